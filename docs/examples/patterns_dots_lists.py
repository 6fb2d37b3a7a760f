from triggerfish import compile_pattern

# Dotted names: EventBridge flattens a pattern and an event into dotted field names,
# so a pattern key "a.b" is the nested field a -> b, and an event key "a.b" meets a nested pattern.
dotted = compile_pattern({"detail": {"instance.state": ["running"]}})
assert dotted.matches({"detail": {"instance": {"state": "running"}}})
assert dotted.matches({"detail": {"instance.state": "running"}})
nested = compile_pattern({"detail": {"instance": {"state": ["running"]}}})
assert nested.matches({"detail": {"instance.state": "running"}})
assert nested.matches({"detail.instance.state": "running"})

# A field named twice (here dotted and nested) keeps the later one, as EventBridge's matcher does.
twice = compile_pattern({"a": {"b": ["x"]}, "a.b": ["y"]})
assert twice.matches({"a": {"b": "y"}})
assert not twice.matches({"a": {"b": "x"}})

# anything-but with a list of prefixes, suffixes or wildcards: none of them may fit.
not_init_or_test = compile_pattern({"detail": {"state": [{"anything-but": {"prefix": ["init", "test"]}}]}})
assert not_init_or_test.matches({"detail": {"state": "running"}})
assert not not_init_or_test.matches({"detail": {"state": "initializing"}})
assert not not_init_or_test.matches({"detail": {"state": "testing"}})
no_temp_files = compile_pattern({"detail": {"file": [{"anything-but": {"suffix": [".tmp", ".swp"]}}]}})
assert not no_temp_files.matches({"detail": {"file": "notes.swp"}})
