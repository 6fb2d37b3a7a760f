"""Declaring projections and upcasters: what `@app.projection` builds, what it refuses, and how the declaration
travels from the app's zygote to the platform (as JSON)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from triggerfish import App
from triggerfish.errors import DeclarationError
from triggerfish.eventstore import upcasting
from triggerfish.loader import spec_from_dict, spec_to_dict
from triggerfish.model import ProjectionTrigger


@pytest.fixture(autouse=True)
def _no_upcasters() -> Iterator[None]:
    upcasting.clear()
    yield
    upcasting.clear()


def test_a_projection_is_a_function_with_a_projection_trigger_that_survives_its_description() -> None:
    app = App("bank")

    @app.projection("account", batch_size=50, timeout=30)
    def balances(event: Any, view: Any) -> None: ...

    spec = app.functions["balances"]
    assert spec.triggers == (ProjectionTrigger("account", 50),)
    assert spec.settings.timeout == 30
    assert spec_from_dict(spec_to_dict(spec)).triggers == spec.triggers


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda app: app.projection(lambda e, v: None), "needs its arguments"),
        (lambda app: app.projection("no spaces", name="p")(lambda e, v: None), "category"),
        (lambda app: app.projection("account", batch_size=0, name="p")(lambda e, v: None), "batch_size"),
    ],
)
def test_bad_projections_are_refused_naming_the_problem(declare: Any, message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        declare(App("bank"))


def test_an_async_projection_is_refused() -> None:
    async def balances(event: Any, view: Any) -> None: ...

    with pytest.raises(DeclarationError, match="plain def"):
        App("bank").projection("account")(balances)


def test_upcasters_chain_and_two_for_one_step_are_refused() -> None:
    app = App("bank")
    app.upcaster("Deposited", 1)(lambda data: {"cents": data["euros"] * 100})
    app.upcaster("Deposited", 2)(lambda data: {**data, "currency": "EUR"})
    document = {"type": "Deposited", "schema": 1, "data": {"euros": 2}}
    assert upcasting.upcast(document) == {"type": "Deposited", "schema": 3, "data": {"cents": 200, "currency": "EUR"}}
    assert upcasting.upcast({"type": "Other", "data": 1}) == {"type": "Other", "data": 1}
    with pytest.raises(DeclarationError, match="two upcasters"):
        app.upcaster("Deposited", 1)(lambda data: data)


def test_a_projection_takes_no_other_trigger() -> None:
    app = App("bank")

    def balances(event: Any, view: Any) -> None: ...

    with pytest.raises(DeclarationError, match="event store only"):
        app.projection("account")(app.http("GET", "/balances")(balances))
