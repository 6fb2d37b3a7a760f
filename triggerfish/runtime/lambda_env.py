"""The environment variables Lambda's Python runtime sets, with the values Triggerfish gives them.

Two sets: what the app's import sees (the variables that are the same for
every function of an app version: region, execution environment, task
root), and what each worker has (those, plus the function's own: name,
version, memory size, log group and stream). `_X_AMZN_TRACE_ID` changes
with every invocation and is set by the worker before the handler runs.

    >>> x_amzn_trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    'Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1'

This module is imported by every worker: it imports nothing heavy.
"""

from __future__ import annotations

import datetime
import os
import sys
import uuid
from collections.abc import Mapping

from triggerfish import identity

#: What Lambda's own runtime says it is (`AWS_Lambda_python3.12` on Lambda's Python 3.12 runtime).
EXECUTION_ENV = f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"
#: How an execution environment was started (Lambda also has provisioned-concurrency and snap-start).
INITIALIZATION_TYPE = "on-demand"
#: Where the runtime's own code is (Lambda's is /var/runtime): the triggerfish package.
RUNTIME_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_environment(task_root: str) -> dict[str, str]:
    """The variables an app's import sees, the same for all its functions: set before the module is imported."""
    return {
        "AWS_REGION": identity.REGION,
        "AWS_DEFAULT_REGION": identity.REGION,
        "AWS_EXECUTION_ENV": EXECUTION_ENV,
        "AWS_LAMBDA_INITIALIZATION_TYPE": INITIALIZATION_TYPE,
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": RUNTIME_DIR,
    }


def function_environment(app: str, function: str, version: str, memory_mb: int, task_root: str) -> dict[str, str]:
    """A worker's standard variables: those of the import, and the function's own, as Lambda names them."""
    name = identity.function_name(app, function)
    return {
        **import_environment(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": identity.log_group_name(app, function),
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name(version),
    }


def function_import_environment(
    app: str, function: str, version: str, memory_mb: int, env: Mapping[str, str]
) -> dict[str, str]:
    """What a function's own zygote adds to the app-wide variables before it imports the app: Lambda's variables
    naming the function (not the log stream: that is each worker's) and the function's declared `env`."""
    standard = function_environment(app, function, version, memory_mb, "")
    own = {name: standard[name] for name in standard if name not in _APP_WIDE and name != "AWS_LAMBDA_LOG_STREAM_NAME"}
    return {**own, **env}


_APP_WIDE = frozenset(import_environment(""))


def log_stream_name(version: str) -> str:
    """`YYYY/MM/DD/[version]<32 hex>`: one stream per execution environment (worker), as Lambda names them."""
    day = datetime.datetime.now(datetime.UTC).strftime("%Y/%m/%d")
    return f"{day}/[{version}]{uuid.uuid4().hex}"


def x_amzn_trace_id(traceparent: str) -> str:
    """The X-Ray trace header of an invocation, from its W3C traceparent (the same trace, span and sampling).

    X-Ray's trace id is `1-<8 hex digits of epoch seconds>-<24 hex digits>`: the 32 digits of a W3C trace id
    split 8 + 24, which is how X-Ray itself maps W3C ids.
    """
    _, trace, span, flags = traceparent.split("-")
    sampled = int(flags, 16) & 1
    return f"Root=1-{trace[:8]}-{trace[8:]};Parent={span};Sampled={sampled}"
