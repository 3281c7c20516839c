"""Headless Chromium for the tests that look at a page as a person would: the page is loaded with a probe
script that measures what was drawn and writes it into `<pre id="probe">`, and the DOM is read back."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from typing import Any

import pytest


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


needs_chromium = pytest.mark.skipif(
    chromium() is None, reason="chromium not installed (Debian: apt-get install -y chromium)"
)


def probe(html: str, folder: Path) -> Any:
    """Load `html` (holding a probe script) in headless Chromium; the JSON the probe wrote."""
    page = folder / "probe.html"
    page.write_text(html, encoding="utf-8")
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={folder / 'profile'}",
            "--window-size=1280,1800",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout)
    assert match, result.stderr[-2000:]
    return json.loads(unescape(match.group(1)))
