"""A backend whose driver is not installed, for the test that open_store names the extra to install."""

import no_such_driver_package  # type: ignore[import-not-found]  # noqa: F401
