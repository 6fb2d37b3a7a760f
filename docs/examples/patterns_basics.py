from triggerfish import compile_pattern

# A pattern names the fields to check; each field lists the values that are accepted.
pattern = compile_pattern({"source": ["shop"], "type": ["order.placed", "order.updated"]})

event = {"specversion": "1.0", "id": "1", "source": "shop", "type": "order.placed", "data": {"total": 120}}
assert pattern.matches(event)
assert not pattern.matches({**event, "type": "order.cancelled"})
assert not pattern.matches({"type": "order.placed"})  # every field in the pattern must be there

# JSON text works too, for the pattern and for the event.
assert compile_pattern('{"data": {"total": [120]}}').matches(b'{"data": {"total": 120}}')

# Numbers compare as numbers, however they are written; strings never equal numbers.
price = compile_pattern({"data": {"price": [300]}})
assert price.matches({"data": {"price": 300}})
assert price.matches({"data": {"price": 3.0e2}})
assert price.matches({"data": {"price": 300.0}})
assert not price.matches({"data": {"price": "300"}})

# null matches a null value; "" matches the empty string; neither matches a missing field.
assert compile_pattern({"data": {"note": [None]}}).matches({"data": {"note": None}})
assert not compile_pattern({"data": {"note": [None]}}).matches({"data": {}})
assert not compile_pattern({"data": {"note": [""]}}).matches({"data": {"note": None}})

# An array in the event matches when any of its elements does.
tags = compile_pattern({"data": {"tags": ["urgent"]}})
assert tags.matches({"data": {"tags": ["new", "urgent"]}})
assert not tags.matches({"data": {"tags": []}})

# Arrays of objects are entered too.
items = compile_pattern({"data": {"items": {"sku": ["fish-food"]}}})
assert items.matches({"data": {"items": [{"sku": "net"}, {"sku": "fish-food"}]}})
