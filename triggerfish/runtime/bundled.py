"""What the runtime ships besides the standard library, as Lambda's Python runtime does: the AWS SDK.

Functions ported from Lambda import boto3 without listing it in their
requirements, because Lambda's runtime has it. Triggerfish depends on a
pinned boto3 (see pyproject.toml and docs/runtime.md), so it is on every
app's import path, in a box too. An app that wants to be sure it does not
rely on it writes `boto3 = false` in triggerfish.toml: its zygote then
refuses to import the runtime's copy, and finds boto3 only where the app
brings its own (its installed requirements or its own directory).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: The top-level packages of the AWS SDK that `boto3 = false` leaves out.
SDK_PACKAGES = frozenset({"boto3", "botocore", "s3transfer"})


class LeftOut(importlib.abc.MetaPathFinder):
    """Finds the SDK's packages only in the app's own directories; elsewhere, a ModuleNotFoundError saying why."""

    def __init__(self, own_paths: Sequence[str]) -> None:
        self.own_paths = list(own_paths)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in SDK_PACKAGES:  # submodules follow their package, wherever it was found
            return None
        found = importlib.machinery.PathFinder.find_spec(fullname, self.own_paths)
        if found is not None:
            return found
        raise ModuleNotFoundError(
            f"No module named {fullname!r}: this app leaves the runtime's AWS SDK out (boto3 = false in "
            "triggerfish.toml); list boto3 in its requirements.txt, or remove that line to use the runtime's",
            name=fullname,
        )


def leave_out_sdk(own_paths: Sequence[str]) -> None:
    """Make the runtime's boto3, botocore and s3transfer unimportable here, except from `own_paths`."""
    sys.meta_path.insert(0, LeftOut(own_paths))
