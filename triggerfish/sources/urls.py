"""The NATS and Redis broker URLs, checked before any connection (pure, no I/O).

    check_source_url("nats://app:s3cret@nats.example:4222", kind="nats")   # the URL, or ValueError
    shown_url("redis://:s3cret@cache:6379/0")                             # "redis://:***@cache:6379/0"

A URL names the scheme (`nats://`, `tls://`; `redis://`, `rediss://`), a host and an optional port;
credentials may be in it, and it is never shown with its password.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = {"nats": ("nats", "tls"), "redis": ("redis", "rediss")}
EXAMPLES = {"nats": "nats://127.0.0.1:4222", "redis": "redis://127.0.0.1:6379/0"}


def shown_url(url: str) -> str:
    """The URL without its password, for logs, errors and `status`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def check_source_url(url: object, *, kind: str, where: str | None = None) -> str:
    """`url` when it is a URL for `kind`'s broker; ValueError naming `where` and how to write it otherwise."""
    where = where or f"the {kind.upper()} URL"
    example = f"such as {EXAMPLES[kind]}"
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{where} must be a URL {example}, not {url!r}")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        raise ValueError(f"{where} {shown_url(url)!r} cannot be read ({exc}); write it {example}") from None
    if parts.scheme not in SCHEMES[kind]:
        schemes = " or ".join(f"{s}://" for s in SCHEMES[kind])
        raise ValueError(f"{where} {shown_url(url)!r} has scheme {parts.scheme!r}; use {schemes}, {example}")
    if not parts.hostname:
        raise ValueError(f"{where} {shown_url(url)!r} names no host; write it {example}")
    return url.strip()
