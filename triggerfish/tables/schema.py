"""A table's definition (name, keys, stream view type) and how its items' keys become store keys.

    schema = TableSchema("orders", KeyAttribute("customer", "S"), KeyAttribute("order_id", "N"))
    schema.item_key(item)           # the store key of an item: partition, "\\x01", sort, ordered as DynamoDB orders
    TableSchema.from_config("orders", {"partition_key": "customer", "sort_key": "order_id:N"})

Pure: no I/O.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from triggerfish.errors import DeclarationError
from triggerfish.tables.errors import ValidationError
from triggerfish.tables.values import SCALAR_KEY_TYPES, AttributeValue, Item, escape_part, key_text, type_of

#: DynamoDB's table names (letters, digits, `_`, `-` and `.`), from 3 to 128 characters here (DynamoDB: 255), so
#: that a table's namespace and stream names fit the store's 255 with an app's scope before them.
TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,128}")
STREAM_VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
#: What a table's stream carries unless told otherwise: both images, so any consumer can tell what changed.
DEFAULT_STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"
#: The longest store key an item's key may become (the store's key limit).
MAX_KEY_CHARS = 1024
_SEPARATOR = "\x01"


def check_table_name(name: object) -> str:
    if not isinstance(name, str) or not TABLE_NAME.fullmatch(name):
        raise ValidationError(
            f"1 validation error detected: Value {name!r} at 'tableName' failed to satisfy constraint: Member must"
            " satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length from 3 to 128 (here)"
        )
    return name


@dataclass(frozen=True, slots=True)
class KeyAttribute:
    name: str
    type: str = "S"  # S, N or B

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 255:
            raise ValidationError(f"a key attribute's name is 1 to 255 characters, not {self.name!r}")
        if self.type not in SCALAR_KEY_TYPES:
            raise ValidationError(
                f"Member must satisfy enum value set: [B, N, S]: key attribute {self.name!r} has type {self.type!r}"
            )


@dataclass(frozen=True, slots=True)
class TableSchema:
    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    stream_view_type: str = DEFAULT_STREAM_VIEW_TYPE
    created_at: float = field(default_factory=time.time, compare=False)

    def __post_init__(self) -> None:
        check_table_name(self.name)
        if self.stream_view_type not in STREAM_VIEW_TYPES:
            raise ValidationError(
                f"StreamViewType must be one of {', '.join(STREAM_VIEW_TYPES)}, not {self.stream_view_type!r}"
            )
        if self.sort_key is not None and self.sort_key.name == self.partition_key.name:
            raise ValidationError("Both the Hash Key and the Range Key element in the KeySchema have the same name")

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.partition_key.name,) + (() if self.sort_key is None else (self.sort_key.name,))

    # -- keys --

    def key_of(self, item: Item, where: str = "Item") -> Item:
        """The key attributes of `item`, checked against the schema."""
        key: Item = {}
        for attribute in (self.partition_key, self.sort_key):
            if attribute is None:
                continue
            value = item.get(attribute.name)
            if value is None:
                raise ValidationError(
                    f"One or more parameter values were invalid: Missing the key {attribute.name} in the item"
                )
            if type_of(value) != attribute.type:
                raise ValidationError(
                    f"One or more parameter values were invalid: Type mismatch for key {attribute.name} expected:"
                    f" {attribute.type} actual: {type_of(value)}"
                )
            if type_of(value) in ("S", "B") and not next(iter(value.values())):
                raise ValidationError(
                    "One or more parameter values are not valid. The AttributeValue for a key attribute cannot"
                    f" contain an empty string value. Key: {attribute.name}"
                )
            key[attribute.name] = value
        return key

    def check_key(self, key: Mapping[str, AttributeValue], where: str = "Key") -> Item:
        """A request's `Key`: exactly the key attributes, of the right types."""
        if not isinstance(key, Mapping) or set(key) != set(self.key_names):
            raise ValidationError("The provided key element does not match the schema")
        return self.key_of(dict(key), where)

    def partition_prefix(self, value: AttributeValue) -> str:
        return escape_part(key_text(value)) + _SEPARATOR

    def store_key(self, key: Item) -> str:
        text = self.partition_prefix(key[self.partition_key.name])
        if self.sort_key is not None:
            text += key_text(key[self.sort_key.name])
        if len(text) > MAX_KEY_CHARS:
            raise ValidationError(
                f"One or more parameter values were invalid: the key is longer than this platform keeps"
                f" ({MAX_KEY_CHARS} characters once encoded); shorten it"
            )
        return text

    def item_key(self, item: Item) -> str:
        return self.store_key(self.key_of(item))

    # -- as stored, and from configuration --

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "partition_key": [self.partition_key.name, self.partition_key.type],
            "sort_key": None if self.sort_key is None else [self.sort_key.name, self.sort_key.type],
            "stream_view_type": self.stream_view_type,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TableSchema:
        sort = document.get("sort_key")
        return cls(
            document["name"],
            KeyAttribute(*document["partition_key"]),
            None if sort is None else KeyAttribute(*sort),
            document.get("stream_view_type", DEFAULT_STREAM_VIEW_TYPE),
            document.get("created_at", 0.0),
        )

    @classmethod
    def from_config(cls, name: str, table: Mapping[str, Any]) -> TableSchema:
        """A `[tables.NAME]` table of triggerfish.toml: `partition_key = "id"` (type S) or `"id:N"`,
        optional `sort_key`, optional `stream_view_type`."""

        def fail(message: str) -> DeclarationError:
            return DeclarationError(f"[tables.{name}]: {message}")

        unknown = set(table) - {"partition_key", "sort_key", "stream_view_type"}
        if unknown:
            raise fail(f"unknown key {sorted(unknown)[0]!r}; the keys are partition_key, sort_key, stream_view_type")
        if "partition_key" not in table:
            raise fail('name the partition key: partition_key = "id" (a string key) or "id:N" (a number key)')
        try:
            partition = _key_attribute(table["partition_key"])
            sort = None if table.get("sort_key") is None else _key_attribute(table["sort_key"])
            return cls(name, partition, sort, table.get("stream_view_type", DEFAULT_STREAM_VIEW_TYPE))
        except ValidationError as exc:
            raise fail(exc.message) from None


def _key_attribute(text: object) -> KeyAttribute:
    if not isinstance(text, str) or not text:
        raise ValidationError(f'a key is written "name" or "name:TYPE" (TYPE S, N or B), not {text!r}')
    name, _, kind = text.partition(":")
    return KeyAttribute(name, kind or "S")
