"""Open a static page in headless Chromium: its DOM after load, and a screenshot."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip("no headless browser: install Debian's chromium (scripts/setup.sh does as root)")
    return found


def _run(args: list[str], profile: Path, attempts: int = 3) -> subprocess.CompletedProcess:
    # A profile folder of its own: no state shared with another Chromium, nothing left in $HOME.
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-software-rasterizer",
           "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={profile}", *args]
    for _ in range(attempts):
        # On a crowded machine Chromium's helper processes are sometimes killed mid-load; the page
        # is static, so another attempt sees the same thing.
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode == 0 and "Abnormal renderer termination" not in done.stderr:
            return done
    return done


def dump_dom(page: Path, profile: Path) -> str:
    done = _run(["--dump-dom", page.resolve().as_uri()], profile)
    assert done.returncode == 0, done.stderr[-1500:]
    return done.stdout


def screenshot(page: Path, png: Path, profile: Path) -> bytes:
    png.unlink(missing_ok=True)
    done = _run([f"--screenshot={png}", "--window-size=1200,1400", page.resolve().as_uri()], profile)
    assert done.returncode == 0 and png.is_file(), done.stderr[-1500:]
    return png.read_bytes()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def blank_png_bytes(tmp: Path, profile: Path) -> int:
    """The size of a screenshot of an empty page at the same window size: what "nothing shown" weighs."""
    empty = tmp / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    return len(screenshot(empty, tmp / "empty.png", profile))
