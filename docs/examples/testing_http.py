"""HTTP routes are tested with requests: the gateway turns them into the event the handler gets."""

import json

from triggerfish import App
from triggerfish.testing import SyncTestPlatform

app = App("notes")


@app.http("POST", "/notes/{topic}")
def add_note(event, context):
    note = json.loads(event["body"])
    if not note.get("text"):
        return {"statusCode": 400, "body": "a note needs text"}
    context.publish("NoteAdded", {"topic": event["pathParameters"]["topic"], **note})
    return {"statusCode": 201, "headers": {"location": "/notes/1"}, "body": json.dumps(note)}


def test_add_note() -> None:
    with SyncTestPlatform(app) as platform:
        created = platform.request("POST", "/notes/fish", json={"text": "feed at nine"})
        assert created.status_code == 201
        assert created.headers["location"] == "/notes/1"
        assert platform.request("POST", "/notes/fish", json={}).status_code == 400
        assert platform.request("GET", "/notes/fish").status_code == 405  # no GET route
        assert [e.data for e in platform.published()] == [{"topic": "fish", "text": "feed at nine"}]


test_add_note()
