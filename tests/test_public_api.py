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


def test_the_in_process_platform_loads_no_server_client_or_certificate_code_it_does_not_run() -> None:
    """`triggerfish.testing` starts the real platform in every test process that uses it (and each of the suite's
    subprocesses): the HTTP server, the HTTP client, x509, croniter and crc32c are imported when first used, not by
    the import (together a good part of its import time, more on a loaded machine)."""
    code = (
        "import sys, triggerfish.testing, triggerfish.server.platform, triggerfish.app;"
        "print(sorted(m for m in ('uvicorn', 'httpx', 'click', 'rich', 'cryptography.x509', 'croniter', 'crc32c')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert set(triggerfish.__all__) == {*triggerfish._EXPORTS, "__version__"}
