"""What an MQTT source is told: the broker's URL, topic filters and share groups, checked (pure, no I/O).

    broker = parse_broker_url("mqtts://device-gw:s3cret@broker.example:8883?version=5")
    check_topic_filter("home/+/temperature")     # the filter, or ValueError saying what is wrong and where
    subscription_filter("home/#", share="tf-app")  # "$share/tf-app/home/#"

The rules are MQTT's (3.1.1 §4.7, 5.0 §4.7-4.8): a filter is 1 to 65,535
bytes of UTF-8 without NUL; `#` is the last level and alone in it; `+` is
alone in its level. `$share/...` is not written in a filter: the share
group is an argument of its own, so it is checked and the same filter can be
shared or not. Every error says what is wrong, where, and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

#: Ports by scheme: MQTT over TCP, and over TLS.
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
#: Protocol versions a URL may ask for with `?version=`.
VERSIONS = ("3.1.1", "5")
#: The longest topic filter MQTT can carry (a UTF-8 string's length field is two bytes).
MAX_FILTER_BYTES = 65_535
#: Longest share-group name we accept; MQTT only bounds it by the filter's length.
MAX_SHARE_GROUP = 128


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """A broker's address and credentials, from a URL such as `mqtt://user:password@host:1883?version=5`."""

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: "3.1.1" (the default: every broker speaks it) or "5".
    version: str = "3.1.1"

    def __str__(self) -> str:
        """The URL without its password, for logs and `status`."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}?version={self.version}"


def parse_broker_url(url: object, *, where: str = "the MQTT broker URL") -> BrokerURL:
    """A `BrokerURL` from `mqtt://` or `mqtts://` text; ValueError naming `where` and the fix otherwise."""
    example = "such as mqtt://127.0.0.1:1883 or mqtts://user:password@broker.example:8883?version=5"
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{where} must be a URL {example}, not {url!r}")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{where} {_safe(url)} cannot be read ({exc}); write it {example}") from None
    if parts.scheme not in DEFAULT_PORTS:
        scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(f"{where} {_safe(url)} has {scheme}; use mqtt:// (TCP) or mqtts:// (TLS), {example}")
    if not parts.hostname:
        raise ValueError(f"{where} {_safe(url)} names no host; write it {example}")
    if parts.path not in ("", "/"):
        raise ValueError(f"{where} {_safe(url)} has a path ({parts.path!r}); an MQTT broker URL has none")
    if parts.fragment:
        raise ValueError(f"{where} {_safe(url)} has a fragment (#{parts.fragment}); MQTT has none: remove it")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"version"})
    if unknown:
        raise ValueError(f"{where} {_safe(url)}: unknown option {unknown[0]!r}; the only option is ?version=3.1.1|5")
    version = query.get("version", ["3.1.1"])[-1]
    if version not in VERSIONS:
        raise ValueError(f"{where} {_safe(url)}: version must be 3.1.1 or 5, not {version!r}")
    return BrokerURL(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        version=version,
    )


def _safe(url: str) -> str:
    """The URL quoted for an error message, its password hidden."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            url = url.replace(f":{parts.password}@", ":***@", 1)
    except ValueError:
        pass
    return repr(url)


def check_topic_filter(topic: object) -> str:
    """A topic filter MQTT accepts, or ValueError saying which level is wrong and how to write it."""
    if not isinstance(topic, str) or not topic:
        raise ValueError(
            f"the MQTT topic filter must be a non-empty string such as 'home/+/temperature', not {topic!r}"
        )
    if "\x00" in topic:
        raise ValueError(f"the MQTT topic filter {topic!r} contains a NUL character, which MQTT forbids")
    if len(topic.encode("utf-8", "surrogatepass")) > MAX_FILTER_BYTES:
        raise ValueError(f"the MQTT topic filter is longer than MQTT's {MAX_FILTER_BYTES:,} bytes")
    try:
        topic.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"the MQTT topic filter {topic!r} is not valid UTF-8 (a lone surrogate)") from None
    if topic.startswith("$share/") or topic == "$share":
        raise ValueError(
            f"the MQTT topic filter {topic!r} names a shared subscription; write the plain filter and pass the group"
            " as share=, e.g. @app.on_mqtt('home/#', share='workers')"
        )
    levels = topic.split("/")
    for index, level in enumerate(levels, start=1):
        if "#" in level and (level != "#" or index != len(levels)):
            raise ValueError(
                f"the MQTT topic filter {topic!r}: '#' must be a whole level and the last one (level {index} is"
                f" {level!r}); write e.g. 'home/#'"
            )
        if "+" in level and level != "+":
            raise ValueError(
                f"the MQTT topic filter {topic!r}: '+' must be a whole level (level {index} is {level!r});"
                " write e.g. 'home/+/temperature'"
            )
    return topic


def check_share_group(group: object) -> str:
    """A shared-subscription group name: non-empty, without '/', '+', '#' or NUL (MQTT 5.0 §4.8.2)."""
    if not isinstance(group, str) or not group or len(group) > MAX_SHARE_GROUP or any(c in group for c in "/+#\x00"):
        raise ValueError(
            f"share must be a group name of 1 to {MAX_SHARE_GROUP} characters without '/', '+', '#' or NUL,"
            f" such as 'workers', not {group!r}"
        )
    return group


def subscription_filter(topic: str, share: str | None) -> str:
    """What is sent in SUBSCRIBE: the filter, or `$share/<group>/<filter>` for a shared subscription."""
    return topic if share is None else f"$share/{share}/{topic}"


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a message on `topic` matches `topic_filter`, by MQTT's rules (3.1.1 §4.7.1-4.7.2).

    `+` matches one level, `#` the parent level and everything below it; a topic starting with `$`
    is not matched by a filter starting with a wildcard.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(wanted) == len(levels)
