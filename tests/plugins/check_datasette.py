"""The Datasette plugin as a user has it: `datasette install datasette-sqlite-foryou` done,
Datasette serving the test database on 127.0.0.1, and headless Chromium (tests/plugins/
chromium.py) reading and clicking its pages. Asserts on the rendered DOM: the table action
that links the page, the model (version, refit report, time), a user's feed labelled from
the items table, an item's similar items, the error for an id that is not an integer, and
refits: refused for an anonymous actor (the button disabled, and the POST forced anyway
refused with 403), done for root (signed in through --root's token URL), which moves the
model version on. Leaves page.png, the pages' DOM and datasette.log in OUT.

Usage: python check_datasette.py DATASETTE DB VERSION OUT
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from importlib import metadata

import chromium

FEED = [55, 4, 73, 76, 7]  # recommend(1, 5): user 1 loves cooking (item_id % 3 = 1)
SIMILAR = [23, 44, 71]  # similar_items(2, 3): pets videos like pets video 2
# The instance's settings label the items; the table tuned has its own: no items table, and
# no one may refit it.
CONFIG = {
    "plugins": {"datasette-sqlite-foryou": {
        "items_table": "videos", "label_column": "title", "item_columns": ["genre"]}},
    "databases": {"test": {"tables": {"tuned": {"plugins": {"datasette-sqlite-foryou": {
        "allow_refit": {"id": "nobody"}}}}}}},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, data=None, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Datasette:
    """datasette serve DB on a free port of 127.0.0.1, with --root's sign-in URL read."""

    def __init__(self, tool, db, out):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = os.path.join(out, "metadata.json")
        with open(config, "w") as f:
            json.dump(CONFIG, f, indent=2)
        self.log = open(os.path.join(out, "datasette.log"), "w")
        self.proc = subprocess.Popen(
            [tool, "serve", db, "--host", "127.0.0.1", "--port", str(self.port), "--metadata", config, "--root"],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.root_url = self.proc.stdout.readline().strip()  # --root prints it first
        assert "/-/auth-token?token=" in self.root_url, self.root_url
        deadline = time.monotonic() + 30
        while True:
            try:
                if http(self.base + "/-/versions.json")[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "datasette did not start"
            time.sleep(0.2)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def rows(page, table):
    """Each row of a results table of the page: its item id and its cells' text."""
    return page.evaluate(
        f"[...document.querySelectorAll('table.foryou-{table} tbody tr')].map(r => "
        "({item: Number(r.dataset.itemId), cells: [...r.cells].map(c => c.textContent.trim())}))")


def text(page, selector):
    return page.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent.trim() ?? null")


def model(page):
    return {key: text(page, f'[data-field="{key}"]') for key in ("version", "refitted_at", "mode", "events",
                                                                 "users", "items")}


def save(page, out, name):
    with open(os.path.join(out, name + ".html"), "w") as f:
        f.write(page.html())


def main(tool, db, version, out):
    requires = metadata.requires("datasette-sqlite-foryou")
    assert f"sqlite-foryou=={version}" in requires and any(r.startswith("datasette") for r in requires), requires
    started = time.time()
    server = Datasette(tool, db, out)
    try:
        check(server, version, out, started)
    finally:
        server.close()


def check(server, version, out, started):
    base = server.base
    status, body = http(base + "/-/plugins.json")
    plugin = [p for p in json.loads(body) if p["name"] == "datasette-sqlite-foryou"]
    assert status == 200 and plugin and plugin[0]["version"] == version, body
    # Every read connection loads foryou: a feed from Datasette's SQL API.
    sql = "select item_id, title from recommend(1, 5, 'feed') join videos using (item_id) order by rank"
    status, body = http(f"{base}/test.json?" + urllib.parse.urlencode({"sql": sql, "_shape": "array"}))
    assert status == 200 and [r["item_id"] for r in json.loads(body)] == FEED, body
    # A refit POST: without cookies (no CSRF check applies), refused for want of the
    # permission; with a cookie but no CSRF token, refused by Datasette's CSRF check.
    status, body = http(base + "/-/foryou/test/feed/refit", data=b"mode=full")
    assert status == 403 and "Refitting feed needs the foryou-refit permission" in body, (status, body[:300])
    status, body = http(base + "/-/foryou/test/feed/refit", data=b"mode=full",
                        headers={"Cookie": "ds_csrftoken=forged"})
    assert status == 403 and "POST field did not match cookie" in body, (status, body[:300])

    with chromium.Chromium(log=open(os.path.join(out, "chromium.log"), "w")) as browser:
        anonymous = browser.page(private=True)
        # Datasette's table page of feed links the plugin's page among its table actions.
        assert anonymous.goto(base + "/test/feed") == 200
        action = anonymous.evaluate(
            "[...document.querySelectorAll('.actions-menu-links a')].map(a => [a.textContent.trim(), "
            "a.getAttribute('href')])")
        assert ["foryou: model, feeds and refit", "/-/foryou/test/feed"] in action, action
        assert anonymous.click_and_wait('.actions-menu-links a[href="/-/foryou/test/feed"]') == 200
        assert anonymous.url() == base + "/-/foryou/test/feed", anonymous.url()
        first = model(anonymous)
        assert {k: first[k] for k in ("version", "mode", "events", "users", "items")} == \
            {"version": "1", "mode": "full", "events": "1800", "users": "60", "items": "90"}, first
        # The refit time, from the model: the refit that check_sqlite_utils.py ran just now.
        refitted = anonymous.evaluate("document.querySelector('[data-field=refitted_at] time')?.dateTime")
        assert refitted, first
        when = time.mktime(time.strptime(refitted, "%Y-%m-%dT%H:%M:%S+00:00")) - time.timezone
        assert started - 600 <= when <= time.time() + 1, (refitted, started)
        options = anonymous.evaluate("document.querySelector('[data-option=alpha]')?.textContent")
        assert options == "10.0", options

        # A user's feed, through the form.
        anonymous.fill('#foryou-feed input[name=user]', "1")
        anonymous.fill('#foryou-feed input[name=k]', "5")
        assert anonymous.click_and_wait('#foryou-feed input[type=submit]') == 200
        feed = rows(anonymous, "feed")
        assert [r["item"] for r in feed] == FEED, feed
        assert [r["cells"][2] for r in feed] == [f"cooking #{i}" for i in FEED], feed
        assert all(r["cells"][3] == "cooking" for r in feed), feed
        scores = [float(r["cells"][4]) for r in feed]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0.5, scores
        history = rows(anonymous, "history")
        assert len(history) == 10 and all(r["item"] not in FEED for r in history), history
        save(anonymous, out, "feed")

        # Similar items, through the link of a feed row, then through the form.
        assert anonymous.click_and_wait('table.foryou-feed tr[data-item-id="55"] a[href*="item=55"]') == 200
        similar = rows(anonymous, "similar")
        assert len(similar) == 5 and all(r["cells"][3] == "cooking" for r in similar), similar
        anonymous.fill('#foryou-similar input[name=item]', "2")
        anonymous.fill('#foryou-similar input[name=k]', "3")
        assert anonymous.click_and_wait('#foryou-similar input[type=submit]') == 200
        similar = rows(anonymous, "similar")
        assert [r["item"] for r in similar] == SIMILAR, similar
        assert [r["cells"][2] for r in similar] == [f"pets #{i}" for i in SIMILAR], similar
        assert "like pets #2" in text(anonymous, "#foryou-similar h3"), text(anonymous, "#foryou-similar h3")

        # Ids arrive as text: one that is no integer is a 400 naming the value.
        anonymous.fill('#foryou-feed input[name=user]', "seven")
        assert anonymous.click_and_wait('#foryou-feed input[type=submit]') == 400
        errors = anonymous.evaluate("[...document.querySelectorAll('.foryou-error')].map(e => e.textContent)")
        assert errors == ["user id must be an integer, got 'seven'"], errors
        assert rows(anonymous, "feed") == []

        # An anonymous actor may not refit: the button is disabled, and forcing the POST
        # (with a valid CSRF token) gets Datasette's 403, the model untouched.
        anonymous.goto(base + "/-/foryou/test/feed?user=1&k=5")
        assert anonymous.evaluate("document.querySelector('#foryou-refit-button').disabled") is True
        assert "foryou-refit" in text(anonymous, ".foryou-refit-denied")
        anonymous.evaluate("document.querySelector('#foryou-refit-button').disabled = false")
        assert anonymous.click_and_wait('#foryou-refit-button') == 403
        body = anonymous.evaluate("document.body.textContent")
        assert "Refitting feed needs the foryou-refit permission" in body, body[:500]
        assert anonymous.goto(base + "/-/foryou/test/feed") == 200
        assert model(anonymous)["version"] == "1", model(anonymous)

        # root, signed in through --root's token URL, refits from the page.
        root = browser.page(private=True)
        assert root.goto(server.root_url) == 200
        assert root.goto(base + "/-/foryou/test/feed?user=1&item=2&k=5") == 200
        assert text(root, ".actor") == "root", text(root, ".actor")
        assert root.evaluate("document.querySelector('#foryou-refit-button').disabled") is False
        assert root.evaluate("document.querySelector('.foryou-refit-denied')") is None
        assert root.click_and_wait('#foryou-refit-button') == 200
        assert root.url() == base + "/-/foryou/test/feed?user=1&item=2&k=5", root.url()
        message = text(root, ".message-info")
        assert message and message.startswith("Refitted feed: model version 2 (full, 1800 events"), message
        after = model(root)
        assert after["version"] == "2" and after["events"] == "1800", after
        assert [r["item"] for r in rows(root, "feed")] == FEED  # the same events, the same model
        assert [r["item"] for r in rows(root, "similar")][:3] == SIMILAR
        # The screenshot: root's page just after that refit, its message, the model, a feed
        # and similar items shown.
        save(root, out, "page")
        root.screenshot(os.path.join(out, "page.png"))
        # An incremental one, chosen in the form.
        root.evaluate("document.querySelector('#foryou-refit select[name=mode]').value = 'incremental'")
        assert root.click_and_wait('#foryou-refit-button') == 200
        assert model(root)["version"] == "3" and model(root)["mode"] == "incremental", model(root)
        # The anonymous actor sees the new version too (it is in the file, not the session).
        assert anonymous.goto(base + "/-/foryou/test/feed") == 200
        assert model(anonymous)["version"] == "3", model(anonymous)
        # The index page and its menu link.
        assert root.goto(base + "/-/foryou") == 200
        listed = root.evaluate("[...document.querySelectorAll('table.foryou-tables tbody tr')]"
                               ".map(r => [...r.cells].map(c => c.textContent.trim()).join(' '))")
        assert listed == ["test feed 3", "test tuned 1"], listed
        # tuned: the refit's choice and its candidates; ids only; not even root may refit.
        assert root.click_and_wait('table.foryou-tables a[href="/-/foryou/test/tuned"]') == 200
        assert model(root)["version"] == "1" and model(root)["events"] == "12000", model(root)
        assert float(text(root, '[data-field="tuned-alpha"]')) > 0
        candidates = root.evaluate("document.querySelectorAll('table.foryou-candidates tbody tr').length")
        assert candidates == 4, candidates
        assert root.evaluate("document.querySelector('#foryou-refit-button').disabled") is True
        root.fill('#foryou-feed input[name=user]', "1")
        assert root.click_and_wait('#foryou-feed input[type=submit]') == 200
        heads = root.evaluate("[...document.querySelectorAll('table.foryou-feed th')].map(h => h.textContent)")
        assert heads == ["rank", "item", "score", ""], heads
        assert len(rows(root, "feed")) == 10
        menu = root.evaluate("[...document.querySelectorAll('.nav-menu a')].map(a => a.getAttribute('href'))")
        assert "/-/foryou" in menu, menu

        print(f"plugins: Datasette {datasette_version(base)} with datasette-sqlite-foryou {version} in "
              f"{browser.version}: model page, recommend(1, 5) = {FEED} labelled cooking, similar_items(2, 3) = "
              f"{SIMILAR} labelled pets, 'seven' refused (400), anonymous refit refused (403), root's refits "
              f"gave versions 2 and 3; screenshot {os.path.join(out, 'page.png')}")


def datasette_version(base):
    return json.loads(http(base + "/-/versions.json")[1])["datasette"]["version"]


if __name__ == "__main__":
    tool, db, version, out = sys.argv[1:5]
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+.*", version), version
    main(tool, db, version, out)
