from triggerfish import compile_pattern

# numeric: one comparison, or a lower bound (> or >=) then an upper bound (< or <=)
band = compile_pattern({"data": {"total": [{"numeric": [">", 100, "<=", 500]}]}})
assert band.matches({"data": {"total": 100.5}})
assert band.matches({"data": {"total": 500}})
assert not band.matches({"data": {"total": 100}})
assert not band.matches({"data": {"total": "200"}})  # only JSON numbers are compared

exactly = compile_pattern({"data": {"x": [{"numeric": ["=", 3.018e2]}]}})
assert exactly.matches({"data": {"x": 301.8}})

# Several entries in the array are alternatives: below 0, above 100, or exactly 50.
outside = compile_pattern({"data": {"n": [{"numeric": ["<", 0]}, {"numeric": [">", 100]}, 50]}})
assert [outside.matches({"data": {"n": n}}) for n in (-1, 0, 50, 101)] == [True, False, True, True]

# cidr: IPv4 or IPv6 addresses inside a block
ip = compile_pattern({"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}, {"cidr": "2001:db8::/32"}]}})
assert ip.matches({"detail": {"sourceIPAddress": "10.0.0.7"}})
assert ip.matches({"detail": {"sourceIPAddress": "2001:db8::1"}})
assert not ip.matches({"detail": {"sourceIPAddress": "10.0.1.7"}})
