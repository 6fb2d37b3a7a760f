"""What an AMQP source is told: the broker's URL, queue, exchange and routing key, checked (pure, no I/O).

    broker = parse_amqp_url("amqps://app:s3cret@rabbit.example/orders")   # vhost "orders"
    check_amqp_name("queue", "readings")     # or ValueError saying what is wrong and how to fix it

AMQP 0-9-1 names are short strings: at most 255 bytes of UTF-8. Names that
start with `amq.` are the broker's own: RabbitMQ refuses to declare them.
A routing-key pattern of a topic exchange is words separated by dots, with
`*` (one word) and `#` (any number of words) as whole words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
#: The exchange types a queue can be bound through here.
EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
MAX_SHORTSTR = 255


@dataclass(frozen=True, slots=True)
class AmqpURL:
    """A broker's address, credentials and virtual host, from `amqp://user:password@host:5672/vhost`."""

    host: str
    port: int = 5672
    tls: bool = False
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    vhost: str = "/"

    def __str__(self) -> str:
        """The URL without its password, for logs and `status`."""
        vhost = "" if self.vhost == "/" else self.vhost
        return f"{'amqps' if self.tls else 'amqp'}://{self.username}@{self.host}:{self.port}/{vhost}"


def parse_amqp_url(url: object, *, where: str = "the AMQP broker URL") -> AmqpURL:
    """An `AmqpURL` from `amqp://` or `amqps://` text; ValueError naming `where` and the fix otherwise."""
    example = "such as amqp://guest:guest@127.0.0.1:5672/ or amqps://user:password@rabbit.example/vhost"
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{where} must be a URL {example}, not {url!r}")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{where} cannot be read ({exc}); write it {example}") from None
    shown = repr(url.replace(f":{parts.password}@", ":***@", 1) if parts.password else url)
    if parts.scheme not in DEFAULT_PORTS:
        scheme = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(f"{where} {shown} has {scheme}; use amqp:// (TCP) or amqps:// (TLS), {example}")
    if not parts.hostname:
        raise ValueError(f"{where} {shown} names no host; write it {example}")
    if parts.query or parts.fragment:
        raise ValueError(f"{where} {shown} has a query or fragment; the URL is scheme, credentials, host, port, vhost")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if "/" in path:
        raise ValueError(f"{where} {shown}: the virtual host is one path segment (write '/' in it as %2F)")
    return AmqpURL(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "amqps",
        username=unquote(parts.username) if parts.username else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost=unquote(path) if path else "/",
    )


def check_amqp_name(what: str, name: object) -> str:
    """A queue or exchange name: 1 to 255 bytes of UTF-8, not the broker's own `amq.` names."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"the {what} must be a non-empty name such as 'readings', not {name!r}")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_SHORTSTR:
        raise ValueError(f"the {what} name is longer than AMQP's {MAX_SHORTSTR} bytes")
    if "\x00" in name:
        raise ValueError(f"the {what} name {name!r} contains a NUL character")
    if name.startswith("amq."):
        raise ValueError(f"the {what} name {name!r} starts with 'amq.', which the broker keeps for its own")
    return name


def check_routing_key(key: object) -> str:
    """A binding's routing key (or topic pattern): at most 255 bytes; `*` and `#` only as whole words."""
    if not isinstance(key, str):
        raise ValueError(f"routing_key must be a string such as 'readings.*.temperature', not {key!r}")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_SHORTSTR:
        raise ValueError(f"routing_key is longer than AMQP's {MAX_SHORTSTR} bytes")
    for index, word in enumerate(key.split("."), start=1):
        if word not in ("*", "#") and ("*" in word or "#" in word):
            raise ValueError(
                f"routing_key {key!r}: '*' and '#' must be whole words (word {index} is {word!r});"
                " write e.g. 'readings.*.temperature'"
            )
    return key
