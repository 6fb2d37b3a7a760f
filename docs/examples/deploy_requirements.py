"""The cache key of an app's requirements: the text, without comments, blank lines or spacing."""

import asyncio
from pathlib import Path

from triggerfish.deploy.deps import Dependencies, requirements_key

pinned = "orjson==3.10.0\nhttpx==0.27.0\n"
commented = "# JSON\norjson==3.10.0   # fast\n\nhttpx==0.27.0\n"
assert requirements_key(pinned) == requirements_key(commented)  # one install serves both apps
assert requirements_key(pinned) != requirements_key("orjson==3.10.1\nhttpx==0.27.0\n")


async def main() -> None:
    deps = Dependencies(Path("server-data/deps"))
    result = await deps.ensure(Path("app/requirements.txt"))  # the app has none
    assert result.path is None  # nothing to put on its sys.path


asyncio.run(main())
