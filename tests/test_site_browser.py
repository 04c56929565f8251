"""The leaderboard page in a real browser: headless Chromium opens it from disk, the test
clicks a column header with real mouse events and reads the re-sorted DOM, then saves a
screenshot.

Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe`` (JSON
messages ended by a NUL byte on the child's file descriptors 3 and 4, put there between fork
and exec), so the test needs nothing beyond the standard library: no websocket client, and
no test hook in the page. The clicks go through ``Input.dispatchMouseEvent`` at the header's
position, so they run the page's own sorting code exactly as a reader's click does. Skipped when no Chromium binary is installed
(Debian: ``apt-get install chromium``).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from reports.site import build_site
from reports.statistics import read_statistics
from tests.report_results import write_statistics
from tests.site_results import EVIL, TABLE_ID, write_params, write_results

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER = next((found for name in BROWSERS if (found := shutil.which(name))), None)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe")
TIMEOUT_S = 30.0
VIEWPORT = (1280, 900)

pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium binary on PATH (tried chromium, "
                                "chromium-browser, google-chrome); on Debian: apt-get install chromium")


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe: ``call`` sends one
    command and returns its result, keeping the events that arrive meanwhile."""

    def __init__(self, binary: str, profile: Path, log: Path):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4. Copies numbered 10 and up
        # cannot collide with 3 and 4 when the child moves them there before exec.
        child_ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_read, from_browser_write)]
        os.close(to_browser_read)
        os.close(from_browser_write)

        def move_pipes_to_3_and_4():  # runs in the child between fork and exec
            os.dup2(child_ends[0], 3)
            os.dup2(child_ends[1], 4)

        self._log = log.open("wb")
        try:
            self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                            preexec_fn=move_pipes_to_3_and_4, close_fds=False,
                                            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        finally:
            for fd in child_ends:
                os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def call(self, method: str, params: dict | None = None, browser_level: bool = False) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not browser_level:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for_event(self, method: str) -> dict:
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(index)
            self.events.append(self._receive())

    def evaluate(self, expression: str):
        found = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in found:
            raise RuntimeError(f"page script failed: {found['exceptionDetails']}")
        return found["result"].get("value")

    def _receive(self) -> dict:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer within {TIMEOUT_S:.0f} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the debugging pipe (crashed or exited)")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.call("Browser.close", browser_level=True)
            self.process.wait(timeout=10)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)
            self._log.close()


@pytest.fixture
def page(tmp_path):
    """The page built from the shared synthetic results, written where Chromium can open it."""
    write_results(tmp_path / "results")
    write_params(tmp_path / "params.yaml")
    statistics = write_statistics(tmp_path / "results", tmp_path / "params.yaml")
    entries, statistics = read_statistics(statistics, tmp_path / "results")
    path = tmp_path / "index.html"
    path.write_text(build_site(entries, statistics, plots_dir=tmp_path / "plots"), encoding="utf-8")
    return path


@pytest.fixture
def browser(tmp_path):
    tools = DevTools(BROWSER, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        targets = tools.call("Target.getTargets")["targetInfos"]
        page_target = next(t["targetId"] for t in targets if t["type"] == "page")
        tools.session = tools.call("Target.attachToTarget", {"targetId": page_target, "flatten": True},
                                   browser_level=True)["sessionId"]
        tools.call("Page.enable")
        tools.call("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": VIEWPORT[1],
                                                         "deviceScaleFactor": 1, "mobile": False})
        yield tools
    finally:
        tools.close()


MODEL_COLUMN = f"""Array.from(document.getElementById("{TABLE_ID}").tBodies[0].rows,
                  row => row.cells[2].textContent.replace(/\\s+/g, " ").trim())"""
ARIA_SORT = f"""Object.fromEntries(Array.from(document.getElementById("{TABLE_ID}").tHead.rows[0].cells,
                  cell => [cell.textContent.trim(), cell.getAttribute("aria-sort")]))"""


def click_header(tools: DevTools, label: str) -> None:
    """A left click, as a mouse makes it, in the middle of the header's button."""
    box = tools.evaluate(f"""(() => {{
        const header = Array.from(document.getElementById("{TABLE_ID}").tHead.rows[0].cells)
            .find(cell => cell.textContent.trim() === {json.dumps(label)});
        const button = header.querySelector("button");
        button.scrollIntoView({{block: "center"}});
        const box = button.getBoundingClientRect();
        return {{x: box.x + box.width / 2, y: box.y + box.height / 2}};
    }})()""")
    for kind in ("mousePressed", "mouseReleased"):
        tools.call("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"], "button": "left",
                                                "clickCount": 1})


def test_clicking_a_header_sorts_the_table(page, browser, tmp_path):
    browser.call("Page.navigate", {"url": page.as_uri()})
    browser.wait_for_event("Page.loadEventFired")
    assert browser.evaluate("document.title") == "RecAudit leaderboard"
    # The rows as built: baselines then neural models, each best first; the model named with
    # markup shows as its text.
    assert browser.evaluate(MODEL_COLUMN) == ["pop (ref)", "random", "mf", EVIL, "ncf"]
    assert browser.evaluate(ARIA_SORT)["#"] == "ascending"

    # ndcg@10 means: mf 0.3433 > pop 0.2833 = EVIL 0.2833 > random 0; ncf has none and stays
    # last both ways; the tie keeps the page's order (pop before EVIL) both ways.
    click_header(browser, "ndcg@10")
    assert browser.evaluate(MODEL_COLUMN) == ["mf", "pop (ref)", EVIL, "random", "ncf"]
    states = browser.evaluate(ARIA_SORT)
    assert states["ndcg@10"] == "descending" and {v for k, v in states.items() if k != "ndcg@10"} == {"none"}

    click_header(browser, "ndcg@10")
    assert browser.evaluate(MODEL_COLUMN) == ["random", "pop (ref)", EVIL, "mf", "ncf"]
    assert browser.evaluate(ARIA_SORT)["ndcg@10"] == "ascending"

    # A text column sorts by the string (code-point order: "<" sorts before letters).
    click_header(browser, "model")
    assert browser.evaluate(MODEL_COLUMN) == [EVIL, "mf", "ncf", "pop (ref)", "random"]
    # Ties follow the page's original order, not the previous sort's (by name, EVIL came first).
    click_header(browser, "ndcg@10")
    assert browser.evaluate(MODEL_COLUMN) == ["mf", "pop (ref)", EVIL, "random", "ncf"]
    # "#" puts the leaderboard's order back.
    click_header(browser, "#")
    assert browser.evaluate(MODEL_COLUMN) == ["pop (ref)", "random", "mf", EVIL, "ncf"]
    assert browser.evaluate("document.querySelectorAll('script').length") == 1  # the markup stayed text

    shot = browser.call("Page.captureScreenshot", {"format": "png"})
    png = base64.b64decode(shot["data"])
    screenshot = tmp_path / "site.png"
    screenshot.write_bytes(png)
    assert screenshot.stat().st_size > 1000 and png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert (width, height) == VIEWPORT
