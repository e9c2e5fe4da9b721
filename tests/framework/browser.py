"""Headless Chromium driven by Selenium, for the explorer's browser tests and images/make_screenshots.py.

Debian's `chromium` and `chromium-driver` (installed by .ci/run). A missing binary is an error, never a skip:
the browser tests must run in CI. Each browser gets a fresh profile directory and is stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.framework.nodes import child_pids

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # The dashboard's 2-second poll is a timer: keep Chromium from slowing timers in a window it thinks
    # is hidden or in the background (another test's browser may be open at the same time).
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


def check_installed() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise AssertionError(
            f"missing {', '.join(missing)}: install Debian's chromium and chromium-driver (.ci/run does)"
        )


@contextlib.contextmanager
def chromium(
    width: int = 1280, height: int = 900, mobile: bool = False, javascript: bool = True
) -> Iterator[webdriver.Chrome]:
    """A headless Chromium whose window (viewport, with `mobile`: a phone's) is width x height CSS pixels;
    `javascript=False`: one that runs no script, as a reader who turned it off."""
    check_installed()
    with tempfile.TemporaryDirectory(prefix="explorer-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        if not javascript:
            options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, CSP violations among them
        if mobile:
            options.add_experimental_option(
                "mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}}
            )
        else:
            options.add_argument(f"--window-size={width},{height}")
        service = Service(executable_path=str(CHROMEDRIVER), log_output=os.devnull)
        driver = webdriver.Chrome(service=service, options=options)
        driver_pid = service.process.pid
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            browser_pids = child_pids(driver_pid)
            with contextlib.suppress(Exception):  # a browser that hangs or crashed: killed below
                driver.quit()
            for pid in browser_pids:  # still running after quit: only if it is still our chromium
                if "chromium" in _cmdline(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait(timeout=10)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
