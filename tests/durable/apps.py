"""The apps the durable-function tests serve: real handlers written with AWS's durable execution SDK."""

STEPS_APP = '''
import triggerfish
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration

app = triggerfish.App("durable")


@app.function(durable=True)
@durable_execution
def two_steps(event, context: DurableContext):
    first = context.step(lambda _: event["n"] + 1, name="add")
    context.wait(Duration.from_seconds(1), name="pause")
    second = context.step(lambda _: first * 10, name="times")
    return {"first": first, "second": second}
'''
