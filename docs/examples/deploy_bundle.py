"""Pack an app directory into a deterministic bundle, then keep it as the server does: the app's own, read-only."""

import stat
from pathlib import Path

from triggerfish.deploy.bundle import pack
from triggerfish.deploy.bundles import BundleStore

shop = Path("shop")
for name, text in {
    "app.py": "import triggerfish\napp = triggerfish.App('shop')\n",
    "requirements.txt": "orjson==3.10.0\n",
    "lib/prices.py": "RATE = 2\n",
    "data/orders.csv": "o-1,250\n",
    "data/README.md": "sample data, not shipped\n",
    ".git/HEAD": "ref: refs/heads/main\n",
    "__pycache__/app.cpython-311.pyc": "",
    ".triggerfishignore": "data/*\n!data/README.md\n",
}.items():
    (shop / name).parent.mkdir(parents=True, exist_ok=True)
    (shop / name).write_text(text)

bundle = pack(shop)
# .git/ and bytecode are never shipped; .triggerfishignore left out the CSV but kept the README.
assert bundle.files == [".triggerfishignore", "app.py", "data/README.md", "lib/prices.py", "requirements.txt"]
# The same files give the same bytes, so the server can tell it already has them.
assert pack(shop).sha256 == bundle.sha256
print(f"{len(bundle.files)} files, {bundle.size} bytes, sha256 {bundle.sha256[:12]}")

store = BundleStore(Path("server-data/bundles"))
app_dir = store.put("shop", bundle.sha256, bundle.data)  # verifies the hash and every member, then unpacks
assert (app_dir / "lib" / "prices.py").read_text() == "RATE = 2\n"
assert stat.S_IMODE((app_dir / "lib" / "prices.py").stat().st_mode) == 0o444  # read-only, like its directories
assert store.has("shop", bundle.sha256)
assert not store.has("blog", bundle.sha256)  # another app cannot see it, nor deploy it by its hash
assert store.put("shop", bundle.sha256, bundle.data) == app_dir  # a second upload changes nothing
assert store.verify("shop", bundle.sha256) == app_dir  # what a version is checked with before it loads
