from triggerfish import compile_pattern

# A repeated key: the later value wins, as in EventBridge.
later = compile_pattern('{"source": ["shop"], "source": ["bank"]}')
assert later.source == {"source": ["bank"]}
assert later.matches({"source": "bank"})
assert not later.matches({"source": "shop"})

# Objects under a repeated key merge, key by key.
merged = compile_pattern('{"detail": {"state": ["running"]}, "detail": {"zone": ["a"]}}')
assert merged.source == {"detail": {"state": ["running"], "zone": ["a"]}}
assert merged.matches({"detail": {"state": "running", "zone": "a"}})
assert not merged.matches({"detail": {"state": "running"}})
