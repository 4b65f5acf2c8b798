"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
no driver binary, no pip package, no port; the standard library only.

Chromium reads commands from fd 3 and writes replies and events to fd 4, each a JSON
message ended by a NUL byte (what Puppeteer and Playwright use too). Each Page is one tab,
attached in flat mode (its messages carry a sessionId); a Page made with private=True has
a browser context of its own, so its cookies (a signed-in actor) are its own.

    with Chromium() as browser:
        page = browser.page()
        status = page.goto("http://127.0.0.1:8001/")
        title = page.evaluate("document.title")
        page.screenshot("page.png")
"""

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time


class ChromiumError(RuntimeError):
    pass


class Chromium:
    def __init__(self, binary="chromium", width=1280, height=900, log=None):
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="foryou-chromium-")
        self.next_id, self.buffer, self.events = 0, b"", []
        # The pipe ends chromium gets, moved above 3 and 4 first, so that the child's
        # dup2 onto 3 and 4 never clobbers one with the other.
        commands_r, commands_w = os.pipe()
        replies_r, replies_w = os.pipe()
        child_r = fcntl.fcntl(commands_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(replies_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(commands_r)
        os.close(replies_w)

        def child():
            os.dup2(child_r, 3)  # dup2 clears close-on-exec on 3 and 4 only
            os.dup2(child_w, 4)

        args = [binary, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
                "--hide-scrollbars", "--mute-audio", "--force-color-profile=srgb",
                f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(args, preexec_fn=child, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=log or subprocess.DEVNULL)
        os.close(child_r)
        os.close(child_w)
        self.write_fd, self.read_fd = commands_w, replies_r
        self.version = self.call("Browser.getVersion")["product"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=5)
            except (ChromiumError, OSError, TimeoutError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self.write_fd, self.read_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # --- the protocol --------------------------------------------------------------

    def send(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.write_fd, data):]
        return self.next_id

    def receive(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium: no message in time")
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if ready:
                chunk = os.read(self.read_fd, 1 << 20)
                if not chunk:
                    raise ChromiumError(f"chromium exited (status {self.proc.poll()})")
                self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method, params=None, session=None, timeout=30):
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise ChromiumError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method, session, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event["method"] == method and event.get("sessionId") == session:
                    return self.events.pop(i)
            message = self.receive(deadline)
            if "method" in message:
                self.events.append(message)

    def page(self, private=False):
        context = self.call("Target.createBrowserContext")["browserContextId"] if private else None
        return Page(self, context)


class Page:
    def __init__(self, browser, context=None):
        self.browser = browser
        params = {"url": "about:blank"}
        if context:
            params["browserContextId"] = context
        target = browser.call("Target.createTarget", params)["targetId"]
        self.session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Network.enable")

    def call(self, method, params=None, timeout=30):
        return self.browser.call(method, params, self.session, timeout)

    def _forget_events(self):
        self.browser.events = [e for e in self.browser.events if e.get("sessionId") != self.session]

    def _loaded(self, timeout):
        """Waits for the page's load event; returns the HTTP status of its document."""
        self.browser.wait_event("Page.loadEventFired", self.session, timeout)
        statuses = [e["params"]["response"]["status"] for e in self.browser.events
                    if e.get("sessionId") == self.session and e["method"] == "Network.responseReceived"
                    and e["params"].get("type") == "Document"]
        self._forget_events()
        return statuses[-1] if statuses else None

    def goto(self, url, timeout=30):
        self._forget_events()
        result = self.call("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise ChromiumError(f"{url}: {result['errorText']}")
        return self._loaded(timeout)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise ChromiumError(f"{expression[:80]}...: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def click_and_wait(self, selector, timeout=30):
        """Clicks the element (a submit button, a link) and waits for the page it loads."""
        self._forget_events()
        clicked = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; "
            "e.click(); return true; })()")
        if not clicked:
            raise ChromiumError(f"nothing matches {selector}")
        return self._loaded(timeout)

    def fill(self, selector, value):
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; "
            f"e.value = {json.dumps(value)}; e.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()")
        if not found:
            raise ChromiumError(f"nothing matches {selector}")

    def url(self):
        return self.evaluate("location.href")

    def html(self):
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self, path):
        """A PNG of the whole page, as tall as its content."""
        height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)")
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.browser.width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        self.call("Emulation.clearDeviceMetricsOverride")
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path
