"""The tests' own deadlines: stretched by the load per core, never shortened, capped, and set outright when asked."""

from __future__ import annotations

import os

import pytest

from tests import patience


@pytest.mark.parametrize(
    ("load", "cores", "factor"),
    [
        (0.3, 2, 1.0),  # quiet: deadlines as written
        (2.0, 2, 1.0),
        (5.0, 2, 2.5),  # each process has 2/5 of a core: 2.5 times as long
        (20.0, 2, patience.MOST),  # capped, so a real hang still fails
    ],
)
def test_deadlines_stretch_with_the_load_per_core(
    monkeypatch: pytest.MonkeyPatch, load: float, cores: int, factor: float
) -> None:
    monkeypatch.delenv("TRIGGERFISH_TEST_PATIENCE", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert patience.patience() == factor
    assert patience.scaled(10) == 10 * factor


def test_the_factor_can_be_set_outright(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (20.0, 20.0, 20.0))
    monkeypatch.setenv("TRIGGERFISH_TEST_PATIENCE", "1")
    assert patience.scaled(60) == 60


def test_a_wait_that_never_holds_names_what_it_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGERFISH_TEST_PATIENCE", "1")
    with pytest.raises(AssertionError, match=r"the answer: not within 0 s \(last value: None\)"):
        patience.eventually(lambda: None, 0.05, "the answer", interval=0.01)
    assert patience.eventually(lambda: 42, 1, "the answer") == 42
