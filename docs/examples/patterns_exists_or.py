from triggerfish import compile_pattern

# exists: true needs a value at that place (null counts), false needs none.
has_coupon = compile_pattern({"data": {"coupon": [{"exists": True}]}})
assert has_coupon.matches({"data": {"coupon": "SAVE10"}})
assert has_coupon.matches({"data": {"coupon": None}})
assert not has_coupon.matches({"data": {}})
assert not has_coupon.matches({"data": {"coupon": {"code": "SAVE10"}}})  # an object is not a value

no_coupon = compile_pattern({"source": ["shop"], "data": {"coupon": [{"exists": False}]}})
assert no_coupon.matches({"source": "shop", "data": {"total": 5}})
assert not no_coupon.matches({"source": "shop", "data": {"coupon": "SAVE10"}})

# $or: any of the objects in its array, combined (AND) with the other fields
pattern = compile_pattern(
    {
        "source": ["shop"],
        "$or": [{"type": ["order.placed"]}, {"data": {"total": [{"numeric": [">", 1000]}]}}],
    }
)
assert pattern.matches({"source": "shop", "type": "order.placed"})
assert pattern.matches({"source": "shop", "type": "order.updated", "data": {"total": 5000}})
assert not pattern.matches({"source": "shop", "type": "order.updated", "data": {"total": 10}})
assert not pattern.matches({"source": "bank", "type": "order.placed"})
