"""An app that calls sys.exit() while importing: the loader reports it instead of exiting."""

from __future__ import annotations

import sys

sys.exit("configuration missing")
