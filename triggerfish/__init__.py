"""Triggerfish: a self-hosted, event-driven serverless platform for Python.

The public API is re-exported here and pinned by tests/test_public_api.py.
Names are loaded on first use, so `import triggerfish` stays cheap: the
zygote and every worker import it, and a worker's memory is the product.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "TriggerfishError": "triggerfish.errors",
    "InvalidInputError": "triggerfish.errors",
    "InvalidJSONError": "triggerfish.errors",
    "InvalidEventError": "triggerfish.errors",
    "EventTooLargeError": "triggerfish.errors",
    "InvalidPatternError": "triggerfish.errors",
    "StoreError": "triggerfish.errors",
    "DeclarationError": "triggerfish.errors",
    "AppLoadError": "triggerfish.errors",
    "InvocationError": "triggerfish.errors",
    "FunctionNotFoundError": "triggerfish.errors",
    "ThrottledError": "triggerfish.errors",
    "HandlerError": "triggerfish.errors",
    "Retry": "triggerfish.errors",
    "NonRetryable": "triggerfish.errors",
    # events
    "Event": "triggerfish.events.cloudevent",
    "compile_pattern": "triggerfish.events.patterns",
    "Pattern": "triggerfish.events.patterns",
    "RuleSet": "triggerfish.events.ruleset",
    # the store
    "open_store": "triggerfish.store",
    "Store": "triggerfish.store",
    "QueueConfig": "triggerfish.store",
    # apps and functions
    "App": "triggerfish.app",
    "FunctionSettings": "triggerfish.model",
    "FunctionSpec": "triggerfish.model",
    "Context": "triggerfish.runtime.context",
    "idempotent": "triggerfish.runtime.idempotency",
    "hmac_auth": "triggerfish.http_auth",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'triggerfish' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from triggerfish.app import (
        App,
    )
    from triggerfish.errors import (
        AppLoadError,
        DeclarationError,
        EventTooLargeError,
        FunctionNotFoundError,
        HandlerError,
        InvalidEventError,
        InvalidInputError,
        InvalidJSONError,
        InvalidPatternError,
        InvocationError,
        NonRetryable,
        Retry,
        StoreError,
        ThrottledError,
        TriggerfishError,
    )
    from triggerfish.events.cloudevent import (
        Event,
    )
    from triggerfish.events.patterns import (
        Pattern,
        compile_pattern,
    )
    from triggerfish.events.ruleset import (
        RuleSet,
    )
    from triggerfish.http_auth import (
        hmac_auth,
    )
    from triggerfish.model import (
        FunctionSettings,
        FunctionSpec,
    )
    from triggerfish.runtime.context import (
        Context,
    )
    from triggerfish.runtime.idempotency import (
        idempotent,
    )
    from triggerfish.store import (
        QueueConfig,
        Store,
        open_store,
    )
