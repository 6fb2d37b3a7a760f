"""S3's XML documents: the responses it writes and the request bodies it reads. Pure.

    xml_document("ListAllMyBucketsResult", [("Owner", [("ID", "triggerfish")]), ...])

A document is a tree of (name, value) pairs: a value is text, a number, a bool (`true`/`false`) or a
list of pairs (child elements, repeated names allowed, in order).
"""

from __future__ import annotations

import datetime
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from triggerfish.objects.model import ObjectError

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
Pairs = list[tuple[str, Any]]
#: Largest XML request body read (DeleteObjects of 1,000 long keys, CompleteMultipartUpload of 10,000 parts).
MAX_XML_BYTES = 2 * 1024 * 1024


def xml_document(root: str, children: Pairs) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NAMESPACE}">{_children(children)}</{root}>'
    ).encode()


def _children(pairs: Pairs) -> str:
    out = []
    for name, value in pairs:
        if isinstance(value, list):
            out.append(f"<{name}>{_children(value)}</{name}>")
        elif isinstance(value, bool):
            out.append(f"<{name}>{'true' if value else 'false'}</{name}>")
        elif value is None or value == "":
            out.append(f"<{name}/>" if value == "" else "")
        else:
            out.append(f"<{name}>{escape(str(value))}</{name}>")
    return "".join(out)


def location_document(region: str) -> bytes:
    """GetBucketLocation's answer: a bare LocationConstraint element holding the region."""
    element = f'<LocationConstraint xmlns="{NAMESPACE}">{escape(region)}</LocationConstraint>'
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{element}'.encode()


def error_document(code: str, message: str, request_id: str, resource: str = "") -> bytes:
    pairs: Pairs = [("Code", code), ("Message", message)]
    if resource:
        pairs.append(("Resource", resource))
    pairs += [("RequestId", request_id), ("HostId", request_id)]
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{_children(pairs)}</Error>'.encode()


def iso8601(moment: float) -> str:
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def http_date(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def parse(body: bytes, root: str) -> ElementTree.Element:
    """The request document, whose root element must be `root` (any namespace); raises MalformedXML."""
    try:
        element = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ObjectError("MalformedXML", f"The XML you provided was not well-formed: {exc}") from None
    if _local(element.tag) != root:
        raise ObjectError("MalformedXML", f"The XML you provided was not well-formed: the root must be <{root}>")
    return element


def children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag) == name]


def text(element: ElementTree.Element, name: str) -> str | None:
    found = children(element, name)
    return None if not found else (found[0].text or "")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
