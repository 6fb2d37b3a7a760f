from triggerfish import RuleSet

rules = RuleSet()
rules.add("ship", {"type": ["order.placed"]})
rules.add("big-orders", {"type": [{"prefix": "order."}], "data": {"total": [{"numeric": [">", 1000]}]}})
rules.add("not-nz", '{"data": {"country": [{"anything-but": "NZ"}]}}')

event = {"source": "shop", "type": "order.placed", "data": {"total": 5000, "country": "AU"}}
assert rules.matches(event) == ["ship", "big-orders", "not-nz"]  # in the order the rules were added
assert rules.matches({"type": "order.placed", "data": {"total": 5, "country": "NZ"}}) == ["ship"]

rules.add("ship", {"type": ["order.shipped"]})  # same id: replaces the rule, keeps its place
assert rules.matches(event) == ["big-orders", "not-nz"]
assert rules.remove("not-nz")
assert "not-nz" not in rules
assert len(rules) == 2
