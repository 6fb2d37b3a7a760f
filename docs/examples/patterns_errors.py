from triggerfish import InvalidPatternError, compile_pattern

rejected = {
    '{"source": "shop"}': "must be in an array",
    '{"source": []}': "an empty array matches nothing",
    '{"n": [{"numeric": [">", 1, ">", 5]}]}': "a lower bound (> or >=) then an upper bound",
    '{"n": [{"numeric": [">", 6e9]}]}': "between -5e9 and 5e9",
    '{"n": [{"numeric": [">", 0.1234567]}]}': "at most 6 digits after the decimal point",
    '{"f": [{"wildcard": "a**b"}]}': "consecutive wildcard characters",
    '{"f": [{"exists": "yes"}]}': "exists takes true or false",
    '{"f": [{"contains": "x"}]}': "unknown operator 'contains'",
    '{"$or": [{"a": ["x"]}]}': "$or takes an array of at least two objects",
    '{"a": ["x"], "a": ["y"]}': "duplicate key 'a'",
}
for text, reason in rejected.items():
    try:
        compile_pattern(text)
    except InvalidPatternError as error:
        assert reason in str(error), (text, str(error))
    else:
        raise AssertionError(f"{text} was accepted")

# The error says where: a path into the pattern.
try:
    compile_pattern({"detail": {"price": [{"numeric": ["<", "10"]}]}})
except InvalidPatternError as error:
    assert error.path == "detail.price[0].numeric[1]"
    assert str(error) == (
        "invalid event pattern at detail.price[0].numeric[1]: a numeric bound must be a number, not a string"
    )
else:
    raise AssertionError("a string bound was accepted")
