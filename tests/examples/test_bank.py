"""examples/bank for real: `triggerfish dev examples/bank/app.py` in a subprocess, driven over HTTP.

Twenty withdrawals at once from an account that can pay fifteen of them: exactly fifteen succeed, the account
never goes below zero (its stream says so, event by event), the balance projection catches up with the same
figure, and a large withdrawal lands on the account's review stream through a rule on the bus.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.devserver import DevServer, poll

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir = tmp_path_factory.mktemp("bank-data")
    server = DevServer("examples/bank/app.py", "--port", "0", "--data-dir", str(data_dir), cwd=REPO)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield client
    finally:
        server.stop()


def post(bank: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return bank.post(path, json=body)


def test_twenty_concurrent_withdrawals_never_overdraw(bank: httpx.Client) -> None:
    assert post(bank, "/accounts", {"account": "ada", "owner": "Ada"}).status_code == 201
    assert post(bank, "/accounts", {"account": "ada", "owner": "Ada"}).status_code == 409
    assert post(bank, "/accounts/ada/deposits", {"amount": 1500}).status_code == 201

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: post(bank, "/accounts/ada/withdrawals", {"amount": 100}), range(20)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 15 + [409] * 5, [a.text for a in answers]
    assert all(a.json()["message"] == "insufficient funds" for a in answers if a.status_code == 409)

    stream = bank.get("/-/api/v1/eventstore/streams/account-ada", params={"limit": 100}).json()["events"]
    assert [e["version"] for e in stream] == list(range(1, 18))
    balance = 0
    for event in stream:
        balance += {"Deposited": 1, "Withdrawn": -1}.get(event["type"], 0) * event["data"].get("amount", 0)
        assert balance >= 0
    assert balance == 0

    projected = poll(lambda: (a := bank.get("/accounts/ada").json()).get("movements") == 16 and a, timeout=30)
    assert (projected["balance"], projected["owner"]) == (0, "Ada")


def test_a_large_withdrawal_is_flagged_for_review(bank: httpx.Client) -> None:
    assert post(bank, "/accounts", {"account": "grace", "owner": "Grace"}).status_code == 201
    assert post(bank, "/accounts/grace/deposits", {"amount": 5000}).status_code == 201
    assert post(bank, "/accounts/grace/withdrawals", {"amount": 20}).status_code == 201
    assert post(bank, "/accounts/grace/withdrawals", {"amount": 2500}).status_code == 201
    reviews = poll(lambda: bank.get("/accounts/grace/reviews").json()["reviews"] or None, timeout=30)
    assert [r["amount"] for r in reviews] == [2500]
    projections = bank.get("/-/api/v1/eventstore/projections").json()["projections"]
    assert [(p["name"], p["category"], p["error"]) for p in projections] == [("balances", "account", None)]
