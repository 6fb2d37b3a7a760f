"""An uploaded bundle is refused, naming the member or the limit, before anything of it is written."""

import hashlib
import io
import tarfile
from pathlib import Path

from triggerfish.deploy.bundle import BundleLimits, pack
from triggerfish.deploy.unpack import unpack
from triggerfish.errors import BundleError


def refusal(data: bytes, into: Path, limits: BundleLimits | None = None, sha256: str | None = None) -> BundleError:
    try:
        unpack(data, sha256 or hashlib.sha256(data).hexdigest(), into, limits=limits)
    except BundleError as error:
        return error
    raise AssertionError("the bundle was accepted")


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


Path("app").mkdir()
Path("app/app.py").write_text("import triggerfish\napp = triggerfish.App('shop')\n")
bundle = pack(Path("app"))
damaged = refusal(bundle.data[:-8], Path("bundles") / bundle.sha256, sha256=bundle.sha256)  # cut short on the way
assert damaged.phase == "unpack"
print(damaged)

climbing = refusal(tar_gz({"../../etc/cron.d/evil": b"boom\n"}), Path("bundles/hostile"))
assert climbing.path == "../../etc/cron.d/evil"
print(climbing)

# 200 empty files are harmless; past the server's limit on members they are refused at the first one over.
many = tar_gz({f"f{i}": b"" for i in range(200)})
crowded = refusal(many, Path("bundles/crowded"), BundleLimits(max_files=100))
assert "'f100' is past the limit of 100 members per bundle (max_files)" in str(crowded)

# 8 MB of zeros packs into some 8 kB: past max_ratio (100 by default), it is a decompression bomb.
bomb = refusal(tar_gz({"zeros.bin": bytes(8 * 1024 * 1024)}), Path("bundles/bomb"))
assert "expands more than 100 times (max_ratio)" in str(bomb)
print(bomb)

assert not Path("bundles").exists()  # each was refused before a directory was made
