from triggerfish import InvalidPatternError, compile_pattern


def rejection(pattern: object) -> InvalidPatternError:
    try:
        compile_pattern(pattern)  # type: ignore[arg-type]
    except InvalidPatternError as error:
        return error
    raise AssertionError(f"{pattern!r} was accepted")


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
    '{"n": [1e999]}': "overflows a double",
}
for text, reason in rejected.items():
    assert reason in str(rejection(text)), text

# The error says where: a path into the pattern.
error = rejection({"detail": {"price": [{"numeric": ["<", "10"]}]}})
assert error.path == "detail.price[0].numeric[1]"
assert str(error) == (
    "invalid event pattern at detail.price[0].numeric[1]: a numeric bound must be a number, not a string"
)
