"""The headless browser the ``browser`` marker probes for."""

from __future__ import annotations

import shutil

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def browser() -> str | None:
    """A headless-capable Chromium (or Chrome) on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)
