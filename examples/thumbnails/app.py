"""Thumbnails: upload a photo to the `photos` bucket, find its thumbnail in `thumbnails`.

    triggerfish dev examples/thumbnails/app.py
    export AWS_ENDPOINT_URL=http://127.0.0.1:8000/-/aws AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    aws s3 cp cat.jpg s3://photos/cats/cat.jpg
    aws s3 ls s3://thumbnails/cats/

The function is what it would be on AWS Lambda: it reads the S3 notification, fetches the photo with
boto3 and writes the thumbnail back with boto3. Nothing tells it where S3 is: the platform sets
`AWS_ENDPOINT_URL` and credentials in its environment. Needs Pillow (`pip install 'triggerfish[examples]'`).
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import unquote_plus

import boto3
from PIL import Image

import triggerfish

app = triggerfish.App("thumbnails")

#: The largest width and height of a thumbnail, in pixels.
SIZE = (128, 128)


@app.on_object("photos", events=["s3:ObjectCreated:*"], suffix=".jpg", timeout=30, memory_mb=512)
@app.on_object("photos", events=["s3:ObjectCreated:*"], suffix=".png")
def make_thumbnail(event: dict[str, Any], context: Any) -> list[str]:
    s3 = boto3.client("s3")
    made = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])  # S3 URL-encodes keys in its notifications
        photo = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        image = Image.open(io.BytesIO(photo))
        image.thumbnail(SIZE)
        thumbnail = io.BytesIO()
        image.convert("RGB").save(thumbnail, "JPEG", quality=85)
        target = key.rsplit(".", 1)[0] + ".jpg"
        s3.put_object(
            Bucket="thumbnails",
            Key=target,
            Body=thumbnail.getvalue(),
            ContentType="image/jpeg",
            Metadata={"source": f"{bucket}/{key}", "size": f"{image.width}x{image.height}"},
        )
        made.append(target)
    return made
