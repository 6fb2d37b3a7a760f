"""The public API is what `triggerfish/__init__.py` exports; this test pins it.

Changing the public surface is a decision: update EXPECTED deliberately,
and the docs with it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import triggerfish

EXPECTED = [
    "App",
    "AppLoadError",
    "Context",
    "DeclarationError",
    "Event",
    "EventTooLargeError",
    "FunctionNotFoundError",
    "FunctionSettings",
    "FunctionSpec",
    "HandlerError",
    "InvalidEventError",
    "InvalidInputError",
    "InvalidJSONError",
    "InvalidPatternError",
    "InvocationError",
    "NonRetryable",
    "Pattern",
    "QueueConfig",
    "Retry",
    "RuleSet",
    "Store",
    "StoreError",
    "ThrottledError",
    "TriggerfishError",
    "__version__",
    "compile_pattern",
    "hmac_auth",
    "idempotent",
    "open_store",
]


def test_exports_are_pinned() -> None:
    assert sorted(triggerfish.__all__) == sorted(EXPECTED)


def test_every_export_resolves() -> None:
    for name in triggerfish.__all__:
        assert getattr(triggerfish, name) is not None, name


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = triggerfish.NoSuchThing


def test_import_is_cheap() -> None:
    """Workers import triggerfish; the import must not pull in the platform's heavy parts."""
    code = "import sys, triggerfish; print(','.join(sorted(m for m in sys.modules if m.startswith('triggerfish'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "triggerfish"
    heavy = "import sys, triggerfish; print(any(m in sys.modules for m in ('sqlite3', 'click', 'rich', 'croniter')))"
    assert subprocess.run([sys.executable, "-c", heavy], capture_output=True, text=True).stdout.strip() == "False"


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert set(triggerfish.__all__) == {*triggerfish._EXPORTS, "__version__"}
