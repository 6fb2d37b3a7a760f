"""The text of PostgreSQL's `test_decoding` output plugin, parsed: transactions, their row changes, typed columns.

    parse_line("table public.orders: INSERT: id[integer]:1 note[text]:'it''s'")
    -> RowChange(op="INSERT", schema="public", table="orders",
                 new=(Column("id", "integer", "1"), Column("note", "text", "it's")), old=None)

Pure: no I/O, tested against lines the server printed. Why this plugin and
not `pgoutput` or `wal2json` is in docs/pg-changes.md ("Why test_decoding").
Its format (contrib/test_decoding/test_decoding.c), which this follows:

- `BEGIN <xid>` and `COMMIT <xid> (at <timestamp>)` around each transaction
  (`include-xids` and `include-timestamp` on);
- `table <schema>.<table>: INSERT: <columns>`; `UPDATE: [old-key: <columns>
  new-tuple: ]<columns>`; `DELETE: <columns>` (the replica identity: the key,
  or every column under REPLICA IDENTITY FULL), or `(no-tuple-data)`;
  `TRUNCATE: <flags>` for a truncate (no rows);
- a column is ` <name>[<type>]:<value>`: the name quoted as an identifier
  (`"Order Id"`), the type as `format_type` prints it (`integer[]`,
  `timestamp with time zone`), the value `null`, `unchanged-toast-datum` (a
  TOASTed value the UPDATE did not change, so not logged), bare for numbers
  and booleans, `B'0101'` for bit strings, else quoted with `'` doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: A column value PostgreSQL did not write to the WAL: a TOASTed value the UPDATE left unchanged.
UNCHANGED_TOAST = "unchanged-toast-datum"

Op = Literal["INSERT", "UPDATE", "DELETE", "TRUNCATE"]


class DecodingFormatError(ValueError):
    """A line that is not test_decoding's format (another plugin, or a newer PostgreSQL that changed it)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a row as logged: name, type name, and value as PostgreSQL prints it (None: SQL NULL)."""

    name: str
    type: str
    value: str | None
    #: The value was not logged (`unchanged-toast-datum`): the UPDATE did not change this TOASTed column.
    unchanged: bool = False


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row's change. `old` is the replica identity's columns (UPDATE when it has them, DELETE), else None."""

    op: Op
    schema: str
    table: str
    new: tuple[Column, ...] | None
    old: tuple[Column, ...] | None


@dataclass(frozen=True, slots=True)
class Begin:
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    xid: int
    #: The commit's time as PostgreSQL printed it (`2026-12-06 19:09:11.300135+00`), or None without it.
    at: str | None


Line = Begin | Commit | RowChange


def parse_line(text: str) -> Line:
    """One line of output; DecodingFormatError, naming the place, for a line not in the format."""
    if text == "BEGIN" or text.startswith("BEGIN "):
        return Begin(_xid(text[5:], text))
    if text == "COMMIT" or text.startswith("COMMIT "):
        rest = text[6:].strip()
        at = None
        if rest.endswith(")") and "(at " in rest:
            rest, _, stamp = rest.partition("(at ")
            at = stamp[:-1]
        return Commit(_xid(rest, text), at)
    if not text.startswith("table "):
        raise DecodingFormatError(f"not a test_decoding line: {text[:80]!r}")
    reader = _Reader(text, len("table "))
    schema = reader.identifier()
    reader.expect(".")
    table = reader.identifier()
    reader.expect(": ")
    op = reader.word()
    reader.expect(":")
    if op == "TRUNCATE":
        return RowChange("TRUNCATE", schema, table, None, None)
    if op == "INSERT":
        return RowChange("INSERT", schema, table, reader.columns(), None)
    if op == "DELETE":
        return RowChange("DELETE", schema, table, None, reader.columns())
    if op == "UPDATE":
        old = None
        if reader.peek(" old-key:"):
            reader.expect(" old-key:")
            old = reader.columns(stop=" new-tuple:")
            reader.expect(" new-tuple:")
        return RowChange("UPDATE", schema, table, reader.columns(), old)
    raise DecodingFormatError(f"unknown change {op!r} in {text[:80]!r}")


def qualified_name(schema: str, table: str) -> str:
    """`schema.table` quoted as test_decoding prints it (quote_identifier), to match its lines' start."""
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def quote_identifier(name: str) -> str:
    """PostgreSQL's quote_identifier, without the keyword list: quoted unless plain lower-case letters,
    digits, `_` and `$`, not starting with a digit or `$`. (A table named like a keyword, `user`, is
    quoted by PostgreSQL; `pg_capture` asks the server itself for the prefix, so only tests rely on this.)"""
    plain = bool(name) and (name[0].islower() or name[0] == "_") and name.isascii()
    plain = plain and all(c.islower() or c.isdigit() or c in "_$" for c in name)
    return name if plain else '"' + name.replace('"', '""') + '"'


def _xid(text: str, line: str) -> int:
    text = text.strip()
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        raise DecodingFormatError(f"a transaction id that is not a number in {line[:80]!r}") from None


class _Reader:
    """A cursor over one line."""

    def __init__(self, text: str, at: int) -> None:
        self.text = text
        self.at = at

    def fail(self, what: str) -> DecodingFormatError:
        return DecodingFormatError(f"{what} at character {self.at} of {self.text[:120]!r}")

    def peek(self, literal: str) -> bool:
        return self.text.startswith(literal, self.at)

    def expect(self, literal: str) -> None:
        if not self.peek(literal):
            raise self.fail(f"expected {literal!r}")
        self.at += len(literal)

    def word(self) -> str:
        end = self.at
        while end < len(self.text) and self.text[end].isalpha():
            end += 1
        word, self.at = self.text[self.at : end], end
        return word

    def identifier(self) -> str:
        text = self.text
        if self.peek('"'):
            out: list[str] = []
            at = self.at + 1
            while True:
                close = text.find('"', at)
                if close < 0:
                    raise self.fail("an unterminated quoted identifier")
                out.append(text[at:close])
                if text.startswith('"', close + 1):  # "" inside a quoted identifier is one "
                    out.append('"')
                    at = close + 2
                    continue
                self.at = close + 1
                return "".join(out)
        end = self.at
        while end < len(text) and (text[end].isalnum() or text[end] in "_$"):
            end += 1
        if end == self.at:
            raise self.fail("expected an identifier")
        name, self.at = text[self.at : end], end
        return name

    def columns(self, stop: str | None = None) -> tuple[Column, ...] | None:
        if self.peek(" (no-tuple-data)"):
            self.at += len(" (no-tuple-data)")
            return None
        found: list[Column] = []
        while self.at < len(self.text) and not (stop is not None and self.peek(stop)):
            self.expect(" ")
            name = self.identifier()
            self.expect("[")
            close = self.text.find("]:", self.at)
            if close < 0:
                raise self.fail(f"expected ']:' after the type of column {name!r}")
            type_name, self.at = self.text[self.at : close], close + 2
            found.append(self.value(name, type_name))
        return tuple(found)

    def value(self, name: str, type_name: str) -> Column:
        text = self.text
        if self.peek("'") or self.peek("B'"):
            start = self.at + (1 if self.peek("'") else 2)
            out: list[str] = []
            at = start
            while True:
                close = text.find("'", at)
                if close < 0:
                    raise self.fail(f"an unterminated value of column {name!r}")
                out.append(text[at:close])
                if text.startswith("'", close + 1):  # '' inside a literal is one '
                    out.append("'")
                    at = close + 2
                    continue
                self.at = close + 1
                return Column(name, type_name, "".join(out))
        end = text.find(" ", self.at)
        end = len(text) if end < 0 else end
        bare, self.at = text[self.at : end], end
        if bare == "null":
            return Column(name, type_name, None)
        if bare == UNCHANGED_TOAST:
            return Column(name, type_name, None, unchanged=True)
        return Column(name, type_name, bare)
