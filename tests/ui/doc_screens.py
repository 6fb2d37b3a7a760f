"""The screenshots docs/dashboard.md shows: which browser test takes each, and copying them into the docs.

    scripts/screenshots       # runs tests/ui (each test saves what it saw in test-artifacts/ui/), then this

The docs show what the tests saw, so a screenshot in the docs is never a
picture of a dashboard that no longer exists: take them again after a
change to a screen, and commit the images with it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.ui.browser import ARTIFACTS

REPO = Path(__file__).resolve().parents[2]
DOC_IMAGES = REPO / "docs" / "images" / "dashboard"
#: The image in docs/images/dashboard/ by the test whose screenshot it is.
SCREENS = {
    "overview.png": "test_the_overview_lists_every_function_with_its_figures",
    "function.png": "test_invoking_a_function_shows_its_result_and_logs_and_bad_json_says_where",
    "invocation.png": "test_rerun_with_this_input_runs_it_again_and_shows_the_new_invocation",
    "events.png": "test_sending_an_event_shows_it_with_the_rule_it_matched_and_replay_queues_it_again",
    "queues.png": "test_dead_letters_are_shown_and_redriven",
    "schedules.png": "test_a_schedule_is_paused_and_resumed",
    "flow.png": "test_the_flow_map_draws_the_declarations_with_rates",
    "workflow.png": "test_a_workflow_run_shows_its_operations_on_a_time_line",
}


def copy() -> list[str]:
    """Copy each screen's latest screenshot into the docs; the names of those copied. A missing one is an error."""
    missing = [test for test in SCREENS.values() if not (ARTIFACTS / f"{test}.png").is_file()]
    if missing:
        raise SystemExit(f"no screenshot from {', '.join(missing)} in {ARTIFACTS}: run tests/ui first (with Chromium)")
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    for image, test in SCREENS.items():
        shutil.copyfile(ARTIFACTS / f"{test}.png", DOC_IMAGES / image)
    return sorted(SCREENS)


if __name__ == "__main__":
    print("\n".join(f"docs/images/dashboard/{name}" for name in copy()))
