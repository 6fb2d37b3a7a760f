"""The role matrix as data: which role may do what, and what a key of one app may do with another."""

from triggerfish.server.auth import ACTIONS, ROLE_ACTIONS, Principal
from triggerfish.server.keys import ROLES, KeyInfo

print(f"{'':10}" + "".join(f"{action:>10}" for action in ACTIONS))
for role in ROLES:
    print(f"{role:10}" + "".join(f"{'yes' if action in ROLE_ACTIONS[role] else '-':>10}" for action in ACTIONS))

ci = Principal(KeyInfo("1a2b3c4d", "shop ci", "deployer", "shop", created_at=0.0))
assert ci.may("deploy", "shop")
assert ci.may("read", "shop")
assert not ci.may("publish", "shop")  # 403 Forbidden: its role lacks the action
assert not ci.sees("blog")  # 404 AppNotFound for every URL of app blog, as if it did not exist
assert not ci.may("read", "blog")

admin = Principal(KeyInfo("5e6f7a8b", "ops", "admin", None, created_at=0.0))
assert all(admin.may(action, app) for action in ACTIONS for app in ("shop", "blog"))

# Under `triggerfish dev` there are no keys: everything is allowed (and the server binds to localhost).
assert all(Principal.open().may(action, "shop") for action in ACTIONS)
