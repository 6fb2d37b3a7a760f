"""A bank on Triggerfish's event store: accounts as event-sourced aggregates, a balance projection, and a rule.

    POST /accounts                       {"account": "ada", "owner": "Ada"}  ─► Opened      ┐
    POST /accounts/{account}/deposits    {"amount": 500}                     ─► Deposited   ├─► stream account-<id>
    POST /accounts/{account}/withdrawals {"amount": 200}                     ─► Withdrawn   ┘   (event store)
                                                                                                 │
          the bus: every event as a CloudEvent ◄────────────────────────────────────────────────┤
          Withdrawn of 1,000 or more ─► flag_large_withdrawal ─► LargeWithdrawal on review-<id> │
                                                                                                 ▼
          balances (projection of "account") ─► projection.balances/<id>  ◄── GET /accounts/{account}

Run it with `triggerfish dev examples/bank/app.py`; examples/bank/README.md walks through it.

An account's balance is decided from its own events (its aggregate), never
from the projection, which may lag: a withdrawal reads the account's stream,
refuses an overdraft, and appends at the version it read. Two withdrawals
that read the same version cannot both append: the second gets
WrongExpectedVersionError, reads again and decides again. So however many
run at once, the account never goes below zero. A snapshot every
`SNAPSHOT_EVERY` events keeps the read short.
"""

from __future__ import annotations

import json
import re
from typing import Any

import triggerfish
from triggerfish import Context
from triggerfish.eventstore import WrongExpectedVersionError

app = triggerfish.App("bank")

#: A withdrawal at least this large (in cents) is flagged for review.
LARGE_WITHDRAWAL = 1000
#: Save the account's state every this many events, so deciding reads only what came after.
SNAPSHOT_EVERY = 20
#: The shape of the account's state in snapshots; change it when `Account` changes shape.
SNAPSHOT_SCHEMA = "1"
#: How often a command decides again after another writer got there first.
ATTEMPTS = 50

_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")


class Account:
    """An account's state, folded from its events (the aggregate)."""

    def __init__(self, state: dict[str, Any] | None = None, version: int = 0) -> None:
        state = state or {}
        self.opened = bool(state.get("opened"))
        self.owner = state.get("owner")
        self.balance = int(state.get("balance", 0))
        self.version = version

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "Opened":
            self.opened, self.owner = True, data["owner"]
        elif kind == "Deposited":
            self.balance += data["amount"]
        elif kind == "Withdrawn":
            self.balance -= data["amount"]

    def state(self) -> dict[str, Any]:
        return {"opened": self.opened, "owner": self.owner, "balance": self.balance}


def load(context: Context, account: str) -> Account:
    """The account as of its newest event: its snapshot, then the events after it."""
    stream = f"account-{account}"
    snapshot = context.events.load_snapshot(stream, schema=SNAPSHOT_SCHEMA)
    current = Account(snapshot.state, snapshot.version) if snapshot else Account()
    for event in context.events.read(stream, start=current.version + 1):
        current.apply(event.type, event.data)
        current.version = event.version
    return current


def command(context: Context, account: str, decide: Any) -> dict[str, Any]:
    """Load, decide, append at the version loaded; on a conflict load and decide again."""
    stream = f"account-{account}"
    for _ in range(ATTEMPTS):
        current = load(context, account)
        decision = decide(current)
        if "statusCode" in decision:
            return dict(decision)
        try:
            context.events.append(stream, [decision], expected_version=current.version)
        except WrongExpectedVersionError:
            continue
        current.apply(decision["type"], decision["data"])
        current.version += 1
        if current.version % SNAPSHOT_EVERY == 0:
            context.events.save_snapshot(stream, version=current.version, state=current.state(), schema=SNAPSHOT_SCHEMA)
        return respond(201, {"account": account, "balance": current.balance, "version": current.version})
    return respond(503, {"message": "the account is too busy right now; try again"})


@app.http("POST", "/accounts")
def open_account(event: dict[str, Any], context: Context) -> dict[str, Any]:
    body = json.loads(event.get("body") or "{}")
    account, owner = body.get("account"), body.get("owner")
    if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
        return respond(400, {"message": "account: 1 to 64 lowercase letters, digits or _"})
    if not isinstance(owner, str) or not owner:
        return respond(400, {"message": "owner: the account holder's name"})
    try:
        context.events.append(f"account-{account}", [{"type": "Opened", "data": {"owner": owner}}], expected_version=0)
    except WrongExpectedVersionError:
        return respond(409, {"message": f"account {account!r} exists already"})
    return respond(201, {"account": account, "balance": 0, "version": 1})


def _amount(event: dict[str, Any]) -> int | None:
    amount = json.loads(event.get("body") or "{}").get("amount")
    return amount if isinstance(amount, int) and not isinstance(amount, bool) and amount > 0 else None


@app.http("POST", "/accounts/{account}/deposits")
def deposit(event: dict[str, Any], context: Context) -> dict[str, Any]:
    amount = _amount(event)
    if amount is None:
        return respond(400, {"message": "amount: a whole number of cents above 0"})

    def decide(account: Account) -> dict[str, Any]:
        if not account.opened:
            return respond(404, {"message": "no such account"})
        return {"type": "Deposited", "data": {"amount": amount}}

    return command(context, event["pathParameters"]["account"], decide)


@app.http("POST", "/accounts/{account}/withdrawals", concurrency=20)
def withdraw(event: dict[str, Any], context: Context) -> dict[str, Any]:
    amount = _amount(event)
    if amount is None:
        return respond(400, {"message": "amount: a whole number of cents above 0"})

    def decide(account: Account) -> dict[str, Any]:
        if not account.opened:
            return respond(404, {"message": "no such account"})
        if account.balance < amount:
            return respond(409, {"message": "insufficient funds", "balance": account.balance})
        return {"type": "Withdrawn", "data": {"amount": amount}}

    return command(context, event["pathParameters"]["account"], decide)


@app.projection("account")
def balances(event: Any, view: Any) -> None:
    """Each account's balance and the number of its movements, for reading (it may lag the events a little)."""
    account = event.stream.split("-", 1)[1]
    row = view.get(account, {"balance": 0, "movements": 0, "owner": None})
    if event.type == "Opened":
        row["owner"] = event.data["owner"]
    elif event.type in ("Deposited", "Withdrawn"):
        sign = 1 if event.type == "Deposited" else -1
        row = {**row, "balance": row["balance"] + sign * event.data["amount"], "movements": row["movements"] + 1}
    view.put(account, {**row, "position": event.position})


@app.on_event({"type": ["Withdrawn"], "data": {"amount": [{"numeric": [">=", LARGE_WITHDRAWAL]}]}})
@triggerfish.idempotent(key="$.id")
def flag_large_withdrawal(event: dict[str, Any], context: Context) -> None:
    """A large withdrawal is put on the account's review stream (once per withdrawal: events arrive at least once)."""
    account = event["subject"].split("-", 1)[1]
    review = {"type": "LargeWithdrawal", "data": {"amount": event["data"]["amount"], "withdrawal": event["id"]}}
    context.events.append(f"review-{account}", [review])


@app.http("GET", "/accounts/{account}")
def get_account(event: dict[str, Any], context: Context) -> dict[str, Any]:
    """The account as the balance projection has it."""
    account = event["pathParameters"]["account"]
    found = context.call_platform("kv_get", {"namespace": "projection.balances", "key": account})
    if found is None:
        return respond(404, {"message": f"no account {account!r} (or not projected yet)"})
    return respond(200, {"account": account, **json.loads(found["value"])})


@app.http("GET", "/accounts/{account}/reviews")
def get_reviews(event: dict[str, Any], context: Context) -> dict[str, Any]:
    """The account's large withdrawals flagged for review."""
    account = event["pathParameters"]["account"]
    flagged = context.events.read(f"review-{account}")
    return respond(200, {"account": account, "reviews": [e.data for e in flagged]})


def respond(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
