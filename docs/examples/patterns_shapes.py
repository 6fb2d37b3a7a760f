from triggerfish import compile_pattern

cloudevent = {
    "specversion": "1.0",
    "id": "9f1c",
    "source": "shop",
    "type": "order.placed",
    "data": {"total": 120, "country": "NZ"},
}
envelope = {
    "version": "0",
    "id": "9f1c",
    "source": "shop",
    "detail-type": "order.placed",
    "detail": {"total": 120, "country": "NZ"},
}

# The same rule, written either way, matches the event in either shape.
cloudevents_style = compile_pattern({"type": ["order.placed"], "data": {"country": ["NZ"]}})
eventbridge_style = compile_pattern({"detail-type": ["order.placed"], "detail": {"country": ["NZ"]}})
for pattern in (cloudevents_style, eventbridge_style):
    assert pattern.matches(cloudevent)
    assert pattern.matches(envelope)

# The aliases hold at the top level only: a field named "detail" inside data is just "detail".
assert not compile_pattern({"data": {"detail": ["x"]}}).matches({"data": {"data": "x"}})

# data that is not an object, where the pattern looks inside it, is like a missing field: no match.
inside = compile_pattern({"data": {"total": [{"numeric": [">", 100]}]}})
assert not inside.matches({**cloudevent, "data": "a plain string"})
assert not inside.matches({**cloudevent, "data": 120})
