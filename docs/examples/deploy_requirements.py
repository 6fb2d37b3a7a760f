"""What requirements.txt may say: requirement specifiers and their --hash, refused line by line otherwise."""

from triggerfish.deploy.deps import requirements_key
from triggerfish.deploy.requirements import canonical_requirements, check_requirements
from triggerfish.errors import RequirementsError

accepted = check_requirements(
    "# JSON and HTTP\n"
    "orjson==3.10.0   # fast\n"
    "httpx[http2] >= 0.27, < 1 ; python_version >= '3.11'\n"
    "tomli==2.0.1 \\\n"
    "    --hash=sha256:939de3e7a6161af0c887ef91b7d41a53e7c5a1ca976325f429cb46ea9bc30ecc\n"
)
# pip is given the server's rendering of what was accepted, never the file itself.
print(canonical_requirements(accepted))
assert [line.line for line in accepted] == [2, 3, 4]
assert str(accepted[1]) == 'httpx[http2]<1,>=0.27; python_version >= "3.11"'


def refusal(text: str) -> RequirementsError:
    try:
        check_requirements(text)
    except RequirementsError as error:
        return error
    raise AssertionError("the requirements were accepted")


refused = refusal("orjson==3.10.0\n-r ../../admin.key\n--index-url https://example.invalid/simple\n./vendor/pkg\n")
assert [line for line, _ in refused.problems] == [2, 3, 4]
assert refused.phase == "install"
print(refused)

# The installs of one app are kept by the text: comments, blank lines and spacing do not count.
pinned = "orjson==3.10.0\nhttpx==0.27.0\n"
assert requirements_key(pinned) == requirements_key("# JSON\norjson==3.10.0   # fast\n\nhttpx==0.27.0\n")
assert requirements_key(pinned) != requirements_key("orjson==3.10.1\nhttpx==0.27.0\n")
