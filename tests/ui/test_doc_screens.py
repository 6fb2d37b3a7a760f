"""The dashboard's screenshots in the docs: each one the docs show is there, taken by a browser test that exists."""

from __future__ import annotations

import re

from tests.ui.doc_screens import DOC_IMAGES, REPO, SCREENS


def test_every_screenshot_the_docs_show_is_committed_and_taken_by_a_test_that_exists() -> None:
    page = (REPO / "docs" / "dashboard.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"\]\(images/dashboard/([a-z-]+\.png)\)", page))
    assert shown == set(SCREENS)
    for image in SCREENS:
        data = (DOC_IMAGES / image).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), image
    tests = "".join(path.read_text(encoding="utf-8") for path in (REPO / "tests" / "ui").glob("test_*.py"))
    for test in SCREENS.values():
        assert f"def {test}(" in tests, test
