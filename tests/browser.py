"""A headless Chromium for the browser tests: skipped locally when there is none, failed in CI."""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import SkipTest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCREENSHOTS = os.path.join(ROOT, "test-artifacts", "screenshots")


def chromium_path() -> str:
    """The Chromium executable Playwright should drive, or skip (fail when CI=true)."""
    problem = ""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed"
    path = os.environ.get("FLAMENCO_CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser") or ""
    if not problem and not path:
        problem = "no chromium on PATH (tests/run.sh installs Debian's chromium package as root)"
    if problem:
        if os.environ.get("CI") == "true":
            raise AssertionError(f"browser tests cannot run in CI: {problem}")
        raise SkipTest(f"browser tests skipped: {problem}")
    return path


def screenshot_path(name: str) -> str:
    os.makedirs(SCREENSHOTS, exist_ok=True)
    return os.path.join(SCREENSHOTS, name)
