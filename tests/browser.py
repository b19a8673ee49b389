"""A real headless Chromium for tests, driven over the Chrome DevTools protocol.

Only the standard library and ``websockets`` (already in the environment) are used:
launch Debian's ``chromium`` with a fresh profile and no background networking,
attach to its page target, then navigate, evaluate JavaScript, set cookies and
take full-page screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = ["--headless=new", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--no-default-browser-check", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--mute-audio", "--remote-debugging-port=0", "--remote-allow-origins=*"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, *, width: int = 1280, height: int = 900, timeout: float = 60):
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        from websockets.sync.client import connect

        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed (scripts/test-deps.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="dw-chromium-")
        args = [exe, *FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._devtools_port()
        deadline = time.monotonic() + self.timeout
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None,
                          open_timeout=self.timeout).__enter__()
        self.send("Page.enable")
        self.send("Runtime.enable")
        return self

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + self.timeout
        port_file = Path(self.profile) / "DevToolsActivePort"
        while time.monotonic() < deadline:
            if port_file.is_file():
                text = port_file.read_text().split()
                if text:
                    return int(text[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port")

    def __exit__(self, *exc) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- the protocol ---------------------------------------------------------
    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + self.timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            msg = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if msg.get("method") == method:
                return msg
            self.events.append(msg)

    # -- what tests use ---------------------------------------------------------
    def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.events.clear()
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {result['errorText']}")
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if result.get("exceptionDetails"):
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def click_and_wait(self, selector: str) -> None:
        """Click an element that navigates (a link or a submit button); wait for the new page."""
        self.events.clear()
        ok = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                           f" if (!e) return false; e.click(); return true; }})()")
        if not ok:
            raise RuntimeError(f"no element matches {selector}")
        self.wait_event("Page.loadEventFired")

    def set_cookie(self, name: str, value: str, url: str) -> None:
        self.send("Network.enable")
        if not self.send("Network.setCookie", {"name": name, "value": value, "url": url}).get("success", True):
            raise RuntimeError(f"cookie {name} was refused")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: str | os.PathLike[str], *, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"],
                                "height": min(size["height"], 16000), "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        out = Path(path)
        out.write_bytes(base64.b64decode(data))
        return out


def non_blank(png: str | os.PathLike[str], *, min_ink: float = 0.01) -> tuple[bool, float]:
    """(whether the image shows content, the fraction of pixels that are not background)."""
    from PIL import Image

    with Image.open(png) as im:
        grey = im.convert("L")
        hist = grey.histogram()
        total = sum(hist)
        background = max(range(256), key=hist.__getitem__)
        ink = sum(c for level, c in enumerate(hist) if abs(level - background) > 24) / total
    return ink >= min_ink, ink
