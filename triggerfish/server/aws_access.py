"""Who may use `/-/aws` under `triggerfish serve`: the API keys of one app, and each app's own functions.

- An API key of one app is an AWS credential (triggerfish.aws.credentials): its access key id is the
  key's prefix, its role's actions and its app apply, a revoke holds at once (read from the store on
  every request, as keys are).
- Each app's functions get credentials of their own in their environment (`tffn_<app>` and a secret
  derived from a random root the cluster shares in the store), allowed what a function may do to its
  own app anyway (read, publish, configure, invoke), and nothing of another app's. The root sits in
  the server's key-value namespace: whoever can read the store can act as any app's functions, as
  they can read every app's data there already.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from triggerfish._json import dumps, loads
from triggerfish.aws.credentials import Caller, function_environment
from triggerfish.aws.sigv4 import signing_secret
from triggerfish.model import check_app_name
from triggerfish.names import SERVER_NAMESPACE
from triggerfish.server.auth import ROLE_ACTIONS
from triggerfish.server.keys import ApiKeys
from triggerfish.store import ABSENT, KeyValue

#: The access key id of an app's functions: this, then the app's name.
FUNCTION_KEY_MARK = "tffn_"
#: What a function's credentials may do to its own app.
FUNCTION_ACTIONS = frozenset({"read", "publish", "configure", "invoke"})
_ROOT = "aws-function-root"


class ServerCredentials:
    """Resolves an access key id to its caller and signing secret (`triggerfish.aws.credentials.Identify`)."""

    def __init__(self, keys: ApiKeys, kv: KeyValue) -> None:
        self._keys = keys
        self._kv = kv
        self._root: bytes | None = None

    async def load(self) -> None:
        """Read the functions' root secret, making it on a cluster's first start (one maker wins)."""
        while self._root is None:
            found = await self._kv.get(SERVER_NAMESPACE, _ROOT)
            if found is not None:
                self._root = bytes.fromhex(loads(found.value, where="AWS function root")["secret"])
                return
            made = dumps({"secret": secrets.token_hex(32)})
            await self._kv.put(SERVER_NAMESPACE, _ROOT, made, if_version=ABSENT)

    def for_functions(self, app: str) -> tuple[str, str]:
        """The access key id and secret access key of `app`'s functions."""
        if self._root is None:
            raise RuntimeError("ServerCredentials.load() first")
        return FUNCTION_KEY_MARK + app, hmac.new(self._root, app.encode("utf-8"), hashlib.sha256).hexdigest()

    def environment(self, server_url: str, app: str) -> dict[str, str]:
        return function_environment(server_url, *self.for_functions(app))

    async def __call__(self, access_key_id: str) -> tuple[Caller, bytes | None] | None:
        if access_key_id.startswith(FUNCTION_KEY_MARK):
            app = access_key_id[len(FUNCTION_KEY_MARK) :]
            try:
                check_app_name(app)
            except ValueError:
                return None
            _, secret = self.for_functions(app)
            return Caller(access_key_id, app, FUNCTION_ACTIONS), signing_secret(secret)
        found = await self._keys.aws_signing_secret(access_key_id)
        if found is None or found[0].app is None:
            return None
        info, signing = found
        return Caller(access_key_id, info.app, ROLE_ACTIONS[info.role]), signing
