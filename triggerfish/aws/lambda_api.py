"""Lambda's REST-JSON API (`/2015-03-31/functions/...`) over the app's functions: Invoke, ListFunctions, GetFunction.

A function is named as Lambda names it (`APP-FUNCTION`, its ARN, or the app's own name for it); a
qualifier (`:3`, `:live`, `$LATEST`, or `?Qualifier=`) picks one of the versions serving (the live
one, a canary) by its number or an alias (`_version`). Invoke is the same
invocation as the control API's: RequestResponse waits and answers the handler's result (or its
error, with `X-Amz-Function-Error: Unhandled`), `Event` queues it durably (202), `DryRun` checks
(204); `X-Amz-Log-Type: Tail` answers the invocation's log lines (START, output, END, REPORT) as
`X-Amz-Log-Result`.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import unquote

from triggerfish._json import dumps, loads
from triggerfish.aws import lambda_durable
from triggerfish.aws.endpoint import AwsCall, Operation, Service
from triggerfish.aws.protocol import Answer, AwsError
from triggerfish.errors import HandlerError, InvalidInputError, ThrottledError
from triggerfish.identity import function_arn, function_name
from triggerfish.model import FunctionSpec
from triggerfish.runtime.invoke import new_request_id
from triggerfish.server.log_lines import lines_of
from triggerfish.server.registry import LIVE, Alias
from triggerfish.server.versions import AppVersion

#: Lambda's payload limits: 6 MiB synchronous, 1 MiB asynchronous (as Lambda has since 2025: 256 KiB before).
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
#: The log tail Lambda answers: the last 4 KB.
LOG_TAIL_BYTES = 4096
_VERSION = "/2015-03-31"
#: The unqualified version, as Lambda names it.
LATEST = "$LATEST"
_INVOKE = re.compile(rf"{_VERSION}/functions/([^/]+)/invocations/?")
_FUNCTION = re.compile(rf"{_VERSION}/functions/([^/]+)/?")
_CONFIGURATION = re.compile(rf"{_VERSION}/functions/([^/]+)/configuration/?")
_VERSIONS = re.compile(rf"{_VERSION}/functions/([^/]+)/versions/?")
_ALIASES = re.compile(rf"{_VERSION}/functions/([^/]+)/aliases/?")
_ALIAS = re.compile(rf"{_VERSION}/functions/([^/]+)/aliases/([^/]+)/?")


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    if method == "POST" and (match := _INVOKE.fullmatch(path)):
        return "Invoke", {"FunctionName": unquote(match.group(1))}
    if method == "GET" and path.rstrip("/") == f"{_VERSION}/functions":
        return "ListFunctions", {}
    if method == "GET" and (match := _CONFIGURATION.fullmatch(path)):
        return "GetFunctionConfiguration", {"FunctionName": unquote(match.group(1))}
    if method == "GET" and (match := _VERSIONS.fullmatch(path)):
        return "ListVersionsByFunction", {"FunctionName": unquote(match.group(1))}
    if method == "GET" and (match := _ALIASES.fullmatch(path)):
        return "ListAliases", {"FunctionName": unquote(match.group(1))}
    if method == "GET" and (match := _ALIAS.fullmatch(path)):
        return "GetAlias", {"FunctionName": unquote(match.group(1)), "Name": unquote(match.group(2))}
    if method == "GET" and (match := _FUNCTION.fullmatch(path)):
        return "GetFunction", {"FunctionName": unquote(match.group(1))}
    return lambda_durable.route(method, path)


def _qualifier(params: dict[str, Any]) -> str | None:
    """The qualifier a request names: in the FunctionName (`fn:3`, an ARN's last part) or as `?Qualifier=`."""
    given: str = params["path"]["FunctionName"]
    named = given.split(":function:", 1)[1] if ":function:" in given else given
    _, _, in_name = named.partition(":")
    in_query = params["query"].get("Qualifier")
    if in_name and in_query and in_name != in_query:
        raise AwsError(
            "InvalidParameterValueException",
            f"The derived qualifier from the function name ({in_name!r}) does not match the specified qualifier"
            f" ({in_query!r}).",
        )
    return in_name or in_query or None


async def _version(call: AwsCall, qualifier: str | None, *, pick: bool) -> AppVersion:
    """The version a qualifier means: `$LATEST` or none the serving one (with `pick`, as synchronous traffic is
    split between live and a canary), a number one of the versions serving, `live` or another alias its version.

    Only serving versions run here (the live one and a canary): a qualifier naming another is not found.
    """
    platform = call.platform
    if qualifier is None or qualifier in (LATEST, LIVE):
        return platform.pick() if pick else platform.current
    serving = {version.number: version for version in platform.serving()}
    number: int | None = None
    if qualifier.isdigit():
        number = int(qualifier)
    elif platform.releases is not None:
        alias = await platform.releases.alias(qualifier)
        number = None if alias is None else alias.version
        if alias is None:
            raise AwsError("ResourceNotFoundException", f"Alias not found: {qualifier!r}", status=404)
    else:
        raise AwsError(
            "ResourceNotFoundException",
            f"Alias not found: {qualifier!r} (under `triggerfish dev` the aliases are $LATEST and live)",
            status=404,
        )
    if number not in serving:
        shown = ", ".join(str(n) for n in sorted(serving))
        raise AwsError(
            "ResourceNotFoundException",
            f"Function version {qualifier} is not serving here; the versions that run are {shown}"
            " (`triggerfish alias` serves another)",
            status=404,
        )
    return serving[number]


def _function(call: AwsCall, given: str, version: AppVersion | None = None) -> tuple[str, FunctionSpec]:
    """The app's function a Lambda FunctionName (name, APP-NAME, ARN, each optionally qualified) means."""
    app = call.platform.current.app_name
    name = given.split(":function:", 1)[1] if ":function:" in given else given
    name = name.split(":", 1)[0]
    specs = (version or call.platform.current).specs
    for candidate in (name, name.removeprefix(f"{app}-")):
        if candidate in specs:
            return candidate, specs[candidate]
    raise AwsError(
        "ResourceNotFoundException",
        f"Function not found: {given} (the app {app!r} declares {', '.join(sorted(specs)) or 'none'})",
        status=404,
    )


def _configuration(
    app: str, spec: FunctionSpec, qualifier: str | None = None, number: int | None = None
) -> dict[str, Any]:
    arn = function_arn(app, spec.name)
    return {
        "FunctionName": function_name(app, spec.name),
        "FunctionArn": arn if qualifier is None else f"{arn}:{qualifier}",
        "Runtime": "python3.11",
        "Handler": spec.ref,
        "MemorySize": spec.settings.memory_mb,
        "Timeout": int(spec.settings.timeout),
        "Version": LATEST if qualifier is None or number is None else str(number),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
    }


async def list_functions(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    app = call.platform.current.app_name
    return {"Functions": [_configuration(app, s) for _, s in sorted(call.platform.current.specs.items())]}


async def get_function(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    return {"Configuration": await get_function_configuration(call, params)}


async def get_function_configuration(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    qualifier = _qualifier(params)
    version = await _version(call, qualifier, pick=False)
    _, spec = _function(call, params["path"]["FunctionName"], version)
    return _configuration(call.platform.current.app_name, spec, qualifier, version.number)


async def list_versions_by_function(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    """`$LATEST` and each version that has the function: serve's deployed versions, dev's serving one.

    A version's configuration is the serving version's settings with its number: only serving versions are
    loaded, so an older version's memory or timeout is not known here (docs/aws.md).
    """
    name, spec = _function(call, params["path"]["FunctionName"])
    app = call.platform.current.app_name
    releases = call.platform.releases
    if releases is None:
        numbers = sorted(version.number for version in call.platform.serving())
    else:
        numbers = [record.version for record in await releases.versions() if name in record.functions]
    shown = [_configuration(app, spec)]
    shown += [_configuration(app, spec, str(number), number) for number in numbers]
    return {"Versions": shown}


def _alias_document(app: str, function: str, alias: Alias) -> dict[str, Any]:
    document: dict[str, Any] = {
        "AliasArn": f"{function_arn(app, function)}:{alias.name}",
        "Name": alias.name,
        "FunctionVersion": str(alias.version),
        "Description": "",
    }
    if alias.weights:
        weights = {str(number): weight for number, weight in alias.weights.items()}
        document["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    return document


async def _aliases(call: AwsCall) -> list[Alias]:
    releases = call.platform.releases
    if releases is not None:
        return await releases.aliases()
    # Under dev the one alias is `live`: what the platform serves, and its canary.
    canary = call.platform.canary
    weights = {} if canary is None else {canary[0].number: canary[1]}
    return [Alias(LIVE, call.platform.current.number, weights)]


async def list_aliases(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name, _ = _function(call, params["path"]["FunctionName"])
    app = call.platform.current.app_name
    return {"Aliases": [_alias_document(app, name, alias) for alias in await _aliases(call)]}


async def get_alias(call: AwsCall, params: dict[str, Any]) -> dict[str, Any]:
    name, _ = _function(call, params["path"]["FunctionName"])
    wanted = params["path"]["Name"]
    for alias in await _aliases(call):
        if alias.name == wanted:
            return _alias_document(call.platform.current.app_name, name, alias)
    raise AwsError("ResourceNotFoundException", f"Alias not found: {wanted!r}", status=404)


async def invoke(call: AwsCall, params: dict[str, Any]) -> Answer:
    qualifier = _qualifier(params)
    version = await _version(call, qualifier, pick=True)
    name, _ = _function(call, params["path"]["FunctionName"], version)
    headers: dict[str, str] = params["headers"]
    kind = headers.get("x-amz-invocation-type", "RequestResponse")
    if kind not in ("RequestResponse", "Event", "DryRun"):
        raise AwsError("InvalidParameterValueException", f"X-Amz-Invocation-Type {kind!r} is not one of Lambda's")
    body: bytes = params["body"]
    limit = MAX_ASYNC_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD
    if len(body) > limit:
        raise AwsError(
            "RequestTooLargeException", f"Request must be smaller than {limit} bytes for the {kind} invocation type",
            status=413,
        )  # fmt: skip
    try:
        event = loads(body, where="payload") if body.strip() else {}
    except InvalidInputError as exc:
        raise AwsError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
    executed = LATEST if qualifier is None or qualifier == LATEST else str(version.number)
    answer_headers = {"content-type": "application/json", "x-amz-executed-version": executed}
    if kind == "DryRun":
        return Answer(204, b"", answer_headers)
    request_id = new_request_id()
    answer_headers["x-amzn-requestid"] = request_id
    if kind == "Event":
        await version.invoke_async(name, event, request_id=request_id)
        return Answer(202, b"", answer_headers)
    try:
        result = await version.invoke(name, event, request_id=request_id)
        payload = dumps(result)
    except HandlerError as exc:
        answer_headers["x-amz-function-error"] = "Unhandled"
        payload = dumps(exc.error)
    except ThrottledError as exc:
        raise AwsError("TooManyRequestsException", f"Rate Exceeded: {exc}", status=429) from None
    if headers.get("x-amz-log-type", "").lower() == "tail":
        answer_headers["x-amz-log-result"] = await _log_tail(call, request_id)
    return Answer(200, payload, answer_headers)


async def _log_tail(call: AwsCall, request_id: str) -> str:
    record = await call.platform.current.invoker.records.get(request_id)  # one store: any version's records
    lines = [] if record is None else [line.message for line in lines_of(record)]
    text = "".join(f"{line}\n" for line in lines).encode("utf-8", "replace")
    return base64.b64encode(text[-LOG_TAIL_BYTES:]).decode("ascii")


SERVICE = Service(
    name="lambda",
    target_prefix="Lambda",
    protocol="rest-json",
    rest_route=route,
    operations={
        "Invoke": Operation(invoke, "invoke"),
        "ListFunctions": Operation(list_functions, "read"),
        "GetFunction": Operation(get_function, "read"),
        "GetFunctionConfiguration": Operation(get_function_configuration, "read"),
        "ListVersionsByFunction": Operation(list_versions_by_function, "read"),
        "ListAliases": Operation(list_aliases, "read"),
        "GetAlias": Operation(get_alias, "read"),
        **lambda_durable.OPERATIONS,
    },
)
