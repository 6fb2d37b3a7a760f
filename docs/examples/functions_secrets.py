"""A function that declares a secret sees it in context.secrets (and, in its worker, in os.environ)."""

import asyncio

import triggerfish
from triggerfish.errors import DeclarationError, HandlerError
from triggerfish.testing import TestPlatform

app = triggerfish.App("shop")


@app.function(secrets=["STRIPE_KEY"])
def charge(event, context):
    # In a worker the value is also os.environ["STRIPE_KEY"]; tests run handlers in this process, so read
    # context.secrets where a test must see it.
    key = context.secrets["STRIPE_KEY"]
    return {"charged": event["amount"], "live": key.startswith("sk_live_")}


@app.function
def report(event, context):
    return {"secrets": list(context.secrets)}  # declares none: sees none, whatever the app has


async def main() -> None:
    async with TestPlatform(app, secrets={"STRIPE_KEY": "sk_test_123"}) as platform:
        assert await platform.invoke("charge", {"amount": 5}) == {"charged": 5, "live": False}
        assert await platform.invoke("report") == {"secrets": []}

        # Changed without a redeploy: the next invocation sees the new value.
        await platform.set_secret("STRIPE_KEY", "sk_live_456")
        assert (await platform.invoke("charge", {"amount": 5}))["live"] is True

        # A declared secret that is not set fails the invocation, naming it and how to set it.
        await platform.remove_secret("STRIPE_KEY")
        failed: HandlerError | None = None
        try:
            await platform.invoke("charge", {"amount": 5})
        except HandlerError as error:
            failed = error
        assert failed is not None
        assert failed.error_type == "Runtime.SecretNotSet"
        print(failed.error["errorMessage"])
        assert "triggerfish secrets set shop STRIPE_KEY" in str(failed.error["errorMessage"])

    # A secret is not also an env variable; and names the runtime sets are not secrets.
    for bad in ({"secrets": ["TOKEN"], "env": {"TOKEN": "x"}}, {"secrets": ["AWS_REGION"]}):
        scratch = triggerfish.App("scratch")
        try:
            scratch.function(name="bad", **bad)(charge)
            assert scratch.functions, "declarations are checked as a whole when the functions are read"
        except DeclarationError as refused:
            print(refused)
        else:
            raise AssertionError(f"{bad} was accepted")


asyncio.run(main())
