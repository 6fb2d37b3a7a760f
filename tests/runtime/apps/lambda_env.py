"""A function as ported from Lambda: it reads its configuration and builds its AWS client at import."""

from __future__ import annotations

import importlib
import os
from typing import Any

from triggerfish.app import App

app = App("ported")

# Read at import, as most ported modules do.
AT_IMPORT = {name: os.environ.get(name) for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV")}
AT_IMPORT.update({name: os.environ.get(name) for name in ("LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR")})
AT_IMPORT["AWS_LAMBDA_INITIALIZATION_TYPE"] = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")
# A function's own configuration, read at import: there in the zygote of a function that declares `env`.
OWN_AT_IMPORT = {name: os.environ.get(name) for name in ("TABLE", "AWS_LAMBDA_FUNCTION_NAME")}
OWN_AT_IMPORT["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
# Imported without being listed anywhere, as Lambda's runtime allows (by name: the tests are type-checked).
boto3: Any = importlib.import_module("boto3")
CLIENT = boto3.client("sqs")  # no region given: it comes from the environment


@app.function(memory_mb=256)
def ported(event: Any, context: Any) -> Any:
    return {
        "at_import": AT_IMPORT,
        "env": dict(os.environ),
        "client_region": CLIENT.meta.region_name,
        "boto3": boto3.__version__,
        "context": {
            "function_name": context.function_name,
            "function": context.function,
            "arn": context.invoked_function_arn,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
            "client_context": context.client_context,
            "tenant_id": context.tenant_id,
            "traceparent": context.traceparent,
        },
    }


@app.function(memory_mb=512, env={"TABLE": "orders"})
def configured(event: Any, context: Any) -> Any:
    return {"own_at_import": OWN_AT_IMPORT, "pid": os.getpid(), "zygote": os.getppid()}


@app.function()
def shared(event: Any, context: Any) -> Any:
    return {"own_at_import": OWN_AT_IMPORT, "pid": os.getpid(), "zygote": os.getppid()}
