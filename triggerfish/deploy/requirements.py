"""What an app's `requirements.txt` may say: requirement specifiers and their `--hash`, nothing else.

    lines = check_requirements("orjson==3.10.0\\nhttpx[http2]>=0.27; python_version >= '3.11'\\n")
    text = canonical_requirements(lines)     # the only file pip is given

A deployer writes the requirements; the server runs pip. Everything in a
requirements file that is not a package name makes pip do something of the
deployer's choosing on the server: `-r FILE` reads (and on error prints) any
file the server can read, `--index-url` fetches from any host, a local path
or a direct URL installs code from outside the index, and building a local
package runs its build backend. So a line is accepted only when it is a PEP
508 requirement (name, extras, version specifiers, environment markers) with
no URL, optionally followed by `--hash=ALGORITHM:DIGEST` options; every other
line is refused, naming its number and why, before pip runs.

pip is then given `canonical_requirements(...)`, written by the server from
what was parsed, never the deployer's file: whatever pip would have read
differently (continuations, comments, `${VARIABLES}`) cannot reach it.
Where packages come from (the index, `--find-links`, `--pre`) is the server's
configuration (`Host(pip_args=...)`), never the app's.

Pure: no I/O.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from triggerfish.errors import RequirementsError

REQUIREMENTS_FILE = "requirements.txt"
#: Largest requirements file read; a real one is a few kB even with hashes on every line.
MAX_REQUIREMENTS_BYTES = 256 * 1024
#: How many refused lines an error lists before it says how many more there are.
MAX_LISTED_PROBLEMS = 20

#: The digests pip accepts in `--hash`, and their length in hex digits.
HASH_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}

_COMMENT_LINE = re.compile(r"^\s*#")
_INLINE_COMMENT = re.compile(r"(^|\s)#.*$")
_OPTION_START = re.compile(r"(?:^|\s)(-)")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.I)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
_ARCHIVE = re.compile(r"\.(whl|zip|tar|tar\.gz|tgz|tar\.bz2|tbz|tar\.xz|txz|tar\.lz|tlz)$", re.I)
_DRIVE = re.compile(r"^[a-z]:", re.I)

_INCLUDES = "includes another file: the server reads only requirements.txt, so copy the requirements into it"
_EDITABLE = "is an editable install of a local directory or a VCS checkout: require a released package by name"
_WHERE_FROM = (
    "chooses where packages come from: that is the server's setting (pip_args), not the app's; remove the line"
    " (ask the server's operator when a package is not on its index)"
)
_LOCAL = (
    "the server installs released packages from its index only: publish the package to the index, or copy its"
    " code into the app"
)
#: Why an option is refused, by its name; any option not named here gets `_ANY_OPTION`.
_OPTION_REASONS = {
    "-r": _INCLUDES,
    "--requirement": _INCLUDES,
    "-c": _INCLUDES,
    "--constraint": _INCLUDES,
    "-e": _EDITABLE,
    "--editable": _EDITABLE,
    "-i": _WHERE_FROM,
    "--index-url": _WHERE_FROM,
    "--extra-index-url": _WHERE_FROM,
    "--no-index": _WHERE_FROM,
    "-f": _WHERE_FROM,
    "--find-links": _WHERE_FROM,
    "--trusted-host": _WHERE_FROM,
}
_ANY_OPTION = (
    "is a pip option: pip's options are the server's setting (pip_args); an app's requirements.txt names packages,"
    " each optionally followed by --hash=sha256:DIGEST"
)


@dataclass(frozen=True, slots=True)
class RequirementLine:
    """One accepted requirement: where it was, what it asks for, the digests its files must have."""

    #: The line it starts on (1-based); a line continued with a backslash counts from its first line.
    line: int
    requirement: Requirement
    #: `ALGORITHM:DIGEST`, lowercase, in the order given.
    hashes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return str(self.requirement) + "".join(f" --hash={digest}" for digest in self.hashes)


def check_requirements(text: str, *, source: str = REQUIREMENTS_FILE) -> list[RequirementLine]:
    """The requirements in `text`, each checked; RequirementsError listing every refused line otherwise.

    Accepted: blank lines, comments (`# ...`, whole lines or after a space),
    backslash continuations, and lines such as `orjson==3.10.0`,
    `httpx[http2]>=0.27,<1`, `tomli; python_version < "3.11"`, each
    optionally followed by `--hash=sha256:DIGEST` (sha384 and sha512 too).
    Refused: every option (`-r`, `-c`, `-e`, `--index-url`, `--pre`, ...),
    local paths (`./pkg`, `/abs/pkg`, `file:...`, `pkg.whl`), direct and VCS
    URLs (`pkg @ https://...`, `git+https://...`), `${VARIABLE}` references,
    control characters, and text that is not a requirement. The error's
    message names `source`, each line and the reason; `problems` holds them.

        >>> [str(r) for r in check_requirements("Orjson >= 3.9  # fast\\n")]
        ['Orjson>=3.9']
    """
    check_requirements_size(len(text.encode("utf-8", errors="surrogatepass")), source=source)
    accepted: list[RequirementLine] = []
    problems: list[tuple[int, str]] = []
    for first, last, logical in _logical_lines(text):
        where = first if first == last else f"{first}-{last}"
        try:
            line = _check_line(first, logical)
        except _Refused as refused:
            problems.append((first, f"line {where}: {_shown(logical)} {refused.reason}"))
            continue
        if line is not None:
            accepted.append(line)
    if problems:
        listed = [reason for _, reason in problems[:MAX_LISTED_PROBLEMS]]
        if len(problems) > MAX_LISTED_PROBLEMS:
            listed.append(f"... and {len(problems) - MAX_LISTED_PROBLEMS} more")
        raise RequirementsError(
            f"{source}: {len(problems)} line{'s' if len(problems) > 1 else ''} refused; the server installs"
            " requirement specifiers (PEP 508) with optional --hash options only:\n  " + "\n  ".join(listed),
            problems=[(number, reason) for number, reason in problems],
        )
    return accepted


def check_requirements_size(size: int, *, source: str = REQUIREMENTS_FILE) -> None:
    """RequirementsError when a requirements file of `size` bytes is too large to be read at all."""
    if size > MAX_REQUIREMENTS_BYTES:
        raise RequirementsError(
            f"{source} is {size} bytes, over the limit of {MAX_REQUIREMENTS_BYTES}; it should name packages only",
            problems=[(1, "too large")],
        )


def canonical_requirements(lines: list[RequirementLine]) -> str:
    """The requirements file pip is given: one accepted requirement per line, as the server parsed it."""
    return "".join(f"{line}\n" for line in lines)


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _logical_lines(text: str) -> Iterator[tuple[int, int, str]]:
    """(first line, last line, text without comments) of each non-empty logical line.

    A line ending in a backslash goes on with the next, as pip reads it; a
    comment line ends it. Continuations are followed so that an option put on
    the next line is still seen as part of the requirement it follows.
    """
    pending: list[str] = []
    start = 0
    number = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if _COMMENT_LINE.match(raw):
            if pending:
                yield from _finished(start, number - 1, pending)
                pending = []
            continue
        if not pending:
            start = number
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        yield from _finished(start, number, pending)
        pending = []
    if pending:
        yield from _finished(start, number, pending)


def _finished(first: int, last: int, parts: list[str]) -> Iterator[tuple[int, int, str]]:
    logical = _INLINE_COMMENT.sub("", "".join(parts)).strip()
    if logical:
        yield first, last, logical


def _check_line(number: int, logical: str) -> RequirementLine | None:
    if _CONTROL.search(logical):
        raise _Refused("holds a control character; write requirements as plain text")
    if "${" in logical:
        raise _Refused(
            "refers to an environment variable; the server does not expand them (its environment is not the app's):"
            " write the value"
        )
    split = _OPTION_START.search(logical)
    specifier = logical if split is None else logical[: split.start(1)].strip()
    options = "" if split is None else logical[split.start(1) :]
    hashes = _hashes(options)
    if not specifier:
        raise _Refused("has a --hash but no requirement before it; put the hashes on the requirement's line")
    return RequirementLine(number, _requirement(specifier), hashes)


def _hashes(options: str) -> tuple[str, ...]:
    """The digests of `--hash` options; _Refused for any other option."""
    try:
        tokens = shlex.split(options)
    except ValueError as exc:
        raise _Refused(f"has options pip cannot read ({exc})") from None
    digests: list[str] = []
    position = 0
    while position < len(tokens):
        token = tokens[position]
        name, equals, value = token.partition("=")
        if name == "--hash":
            if not equals:  # `--hash sha256:...`, the value as the next word
                position += 1
                value = tokens[position] if position < len(tokens) else ""
            digests.append(_digest(value))
        else:
            short = name[:2] if not name.startswith("--") else name
            raise _Refused(f"uses {short}, which {_OPTION_REASONS.get(short, _ANY_OPTION)}")
        position += 1
    return tuple(digests)


def _digest(value: str) -> str:
    algorithm, _, digest = value.partition(":")
    length = HASH_ALGORITHMS.get(algorithm.lower())
    if length is None or len(digest) != length or not all(c in "0123456789abcdefABCDEF" for c in digest):
        raise _Refused(
            f"has --hash={value!r}; a hash is sha256:, sha384: or sha512: followed by the digest in hex"
            " (pip hash FILE prints one)"
        )
    return f"{algorithm.lower()}:{digest.lower()}"


def _requirement(specifier: str) -> Requirement:
    """`specifier` parsed as a PEP 508 requirement without a URL; _Refused saying what it is otherwise."""
    head = specifier.split(";", 1)[0].strip()
    if _VCS.match(head):
        raise _Refused("is a VCS URL; " + _FROM_INDEX)
    if head.lower().startswith("file:"):
        raise _Refused("is a local file URL; " + _LOCAL)
    if _URL.match(head):
        raise _Refused("is a direct URL; " + _FROM_INDEX)
    if "@" not in head:
        if head.startswith((".", "/", "~", "\\")) or "/" in head or "\\" in head or _DRIVE.match(head):
            raise _Refused("is a local path; " + _LOCAL)
        if _ARCHIVE.search(head):
            raise _Refused("names a package file; " + _LOCAL)
    try:
        requirement = Requirement(specifier)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        raise _Refused(
            f"is not a requirement specifier ({reason}); write a package name with optional extras, version and"
            " marker, such as httpx[http2]>=0.27; python_version >= '3.11'"
        ) from None
    if requirement.url is not None:
        url = requirement.url
        if url.lower().startswith("file:"):
            raise _Refused(f"installs {requirement.name} from a local file URL (`name @ file:...`); " + _LOCAL)
        kind = "a VCS URL" if _VCS.match(url) else "a URL"
        raise _Refused(f"installs {requirement.name} from {kind} (`name @ URL`); " + _FROM_INDEX)
    return requirement


_FROM_INDEX = (
    "the server installs packages from its index only, never from a URL of the deployer's choosing: require the"
    " package by name and version"
)


def _shown(logical: str) -> str:
    """The line as an error shows it: quoted, and cut short when long."""
    return repr(logical if len(logical) <= 80 else logical[:77] + "...")
