"""Headless Chromium for the tests that look at the HTML digest as a browser shows it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.kit import servers_unavailable


def find_browser() -> str | None:
    for name in (os.environ.get("FOLLOWUP_CHROMIUM", ""), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@contextlib.contextmanager
def browser_session(tmp_path: Path) -> Iterator[str]:
    binary = find_browser()
    if binary is None:
        servers_unavailable("no Chromium installed (Debian: apt-get install chromium)")
    yield binary


def dump_dom(binary: str, page: Path, profile: Path, timeout: float = 30.0,
             extra: Sequence[str] = ("--dump-dom",)) -> str:
    """The page's DOM after Chromium loaded it (or, with other ``extra`` arguments such as
    a screenshot, its output); the whole browser is stopped afterwards."""
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
            f"--user-data-dir={profile}", *extra, page.as_uri()]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only the browser we started
        process.communicate()
        pytest.fail(f"Chromium did not render {page.name} within {timeout:g} s")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # helpers it left behind
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode("utf-8")
