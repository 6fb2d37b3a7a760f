import asyncio

import triggerfish
from triggerfish.testing import TestPlatform
from triggerfish.workflows import WorkflowContext

app = triggerfish.App("reminders")


def send_reminder(user: str) -> str:
    return f"reminded {user}"


@app.workflow
def remind(ctx: WorkflowContext, user: str) -> list[str]:
    sent = [ctx.step(send_reminder, user)]
    ctx.sleep(7 * 24 * 3600)  # a week: the test moves the clock instead of waiting
    sent.append(ctx.step(send_reminder, user))
    return sent


async def main() -> None:
    async with TestPlatform(app) as platform:
        started = await platform.invoke("remind", "ada")
        assert started["status"] == "RUNNING"  # asleep after the first reminder
        workflows = platform.platform.workflows
        assert (await workflows.describe(started["workflow_id"]))["ops"][1]["status"] == "WAITING"

        await platform.advance(7 * 24 * 3600)
        record = await workflows.describe(started["workflow_id"])
        assert record["status"] == "SUCCEEDED"
        assert record["result"] == ["reminded ada", "reminded ada"]


asyncio.run(main())
