"""An uploaded bundle is refused, naming the member, when its hash or any member is wrong."""

import hashlib
import io
import tarfile
from pathlib import Path

from triggerfish.deploy.bundle import pack, unpack
from triggerfish.errors import BundleError


def refusal(data: bytes, sha256: str, into: Path) -> BundleError:
    try:
        unpack(data, sha256, into)
    except BundleError as error:
        return error
    raise AssertionError("the bundle was accepted")


Path("app").mkdir()
Path("app/app.py").write_text("import triggerfish\napp = triggerfish.App('shop')\n")
bundle = pack(Path("app"))

damaged = refusal(bundle.data[:-8], bundle.sha256, Path("bundles") / bundle.sha256)  # cut short on the way
assert damaged.phase == "unpack"
print(damaged)

buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
    member = tarfile.TarInfo("../../etc/cron.d/evil")
    member.size = 5
    archive.addfile(member, io.BytesIO(b"boom\n"))
hostile = buffer.getvalue()
climbing = refusal(hostile, hashlib.sha256(hostile).hexdigest(), Path("bundles/hostile"))
assert climbing.path == "../../etc/cron.d/evil"
print(climbing)
assert not Path("bundles/hostile").exists()  # nothing was left behind
