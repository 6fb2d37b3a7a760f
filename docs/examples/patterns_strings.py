from typing import Any

from triggerfish import compile_pattern


def check(accepted: list[Any], value: Any) -> bool:
    """Does a pattern accepting `accepted` at data.v match an event with `value` there?"""
    return compile_pattern({"data": {"v": accepted}}).matches({"data": {"v": value}})


# prefix and suffix, optionally ignoring case
assert check([{"prefix": "us-"}], "us-east-1")
assert not check([{"prefix": "us-"}], "eu-west-1")
assert check([{"prefix": {"equals-ignore-case": "EventB"}}], "eventbridge")
assert check([{"suffix": ".png"}], "photo.png")
assert check([{"suffix": {"equals-ignore-case": ".png"}}], "PHOTO.PNG")
assert not check([{"prefix": "1"}], 123)  # string operators never match numbers

# equals-ignore-case
assert check([{"equals-ignore-case": "alice"}], "ALICE")
assert not check([{"equals-ignore-case": "alice"}], "alicia")

# wildcard: * is any run of characters (even none); \* is a literal star
assert check([{"wildcard": "dir/*.png"}], "dir/a/b.png")
assert check([{"wildcard": "*Title*"}], "The Title Page")
assert not check([{"wildcard": "dir/*.png"}], "other/b.png")
assert check([{"wildcard": "a\\*b"}], "a*b")

# anything-but: any present value except these
assert check([{"anything-but": ["stopped", "overloaded"]}], "running")
assert not check([{"anything-but": ["stopped", "overloaded"]}], "stopped")
assert check([{"anything-but": {"prefix": "init"}}], "running")
assert not check([{"anything-but": {"suffix": ".txt"}}], "notes.txt")
assert not check([{"anything-but": {"equals-ignore-case": ["Stopped"]}}], "STOPPED")
assert not check([{"anything-but": {"wildcard": "*/lib/*"}}], "/usr/lib/x")
assert not compile_pattern({"v": [{"anything-but": "x"}]}).matches({})  # a missing field is not "anything"
