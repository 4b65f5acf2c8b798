"""The serving functions as a Python app calls them: the standard library's sqlite3 with
the extension loaded, parameters bound from Python values. Run by `make python` (part of
`make test`) with Debian's /usr/bin/python3, whose sqlite3 module can load extensions.

Usage: python3 tests/python/serving.py /path/to/libforyou (without .so)
"""

import json
import sqlite3
import sys


def connect(ext):
    con = sqlite3.connect(":memory:", isolation_level=None)
    if not hasattr(con, "enable_load_extension"):
        sys.exit(f"{sys.executable}: this Python's sqlite3 cannot load extensions; "
                 "run the test with Debian's /usr/bin/python3 (PYTHON_EXT=...)")
    con.enable_load_extension(True)
    con.load_extension(ext)
    return con


def fitted(con, options=""):
    con.execute(f"CREATE VIRTUAL TABLE feed USING foryou(factors = 8, iterations = 6, seed = 3{options})")
    rows = [(i % 60, ((i % 60) * 37 + (i // 60) * 13) % 400, 1.0 + (i * 7) % 14, 15.0) for i in range(6000)]
    con.execute("BEGIN")
    con.executemany("INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (?, ?, ?, ?)", rows)
    con.execute("COMMIT")
    report = json.loads(con.execute("SELECT foryou_refit('feed')").fetchone()[0])
    assert report["items"] == 400, report


def main(ext):
    con = connect(ext)
    fitted(con, ", exclude_items = 'hidden'")
    con.execute("CREATE TABLE hidden(user_id INTEGER, item_id INTEGER)")
    full = con.execute("SELECT item_id, score FROM recommend(?, 10000)", (7,)).fetchall()
    assert len(full) >= 300, len(full)

    # An allow-list bound from Python: the 50th to 60th items come back, 10 of them, in order.
    band = [item for item, _ in full[49:60]]
    want = full[49:59]
    got = con.execute("SELECT item_id, score FROM recommend(?, 10) WHERE item_id IN (SELECT value FROM json_each(?))",
                      (7, json.dumps(band))).fetchall()
    assert got == want, (got, want)
    marks = ", ".join("?" * len(band))
    got = con.execute(f"SELECT item_id, score FROM recommend(?, 10) WHERE item_id IN ({marks})", (7, *band)).fetchall()
    assert got == want, (got, want)
    # One bound parameter is not an allow-list (documented): it filters the top 10.
    assert con.execute("SELECT * FROM recommend(?, 10) WHERE item_id = ?", (7, band[0])).fetchall() == []

    # Ranking a given list: every candidate, best first, ranks 1..n.
    candidates = [item for item, _ in full[::9]][::-1]
    got = con.execute("SELECT item_id, rank FROM recommend(?, ?) WHERE item_id IN (SELECT value FROM json_each(?))",
                      (7, len(candidates), json.dumps(candidates))).fetchall()
    assert [i for i, _ in got] == [i for i, _ in full[::9]], got
    assert [r for _, r in got] == list(range(1, len(candidates) + 1))

    # The block-list: the user's row and a row for everyone leave the feed at once.
    con.execute("INSERT INTO hidden VALUES (?, ?), (NULL, ?)", (7, full[0][0], full[1][0]))
    top = [i for i, in con.execute("SELECT item_id FROM recommend(?, 10)", (7,))]
    assert top == [i for i, _ in full[2:12]], top

    # similar_users and why_recommended.
    neighbours = con.execute("SELECT user_id, score, rank FROM similar_users(?, 5)", (7,)).fetchall()
    assert len(neighbours) == 5 and all(u != 7 for u, _, _ in neighbours), neighbours
    assert [r for _, _, r in neighbours] == [1, 2, 3, 4, 5]
    con.execute("INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (7, ?, 15, 15)", (full[20][0],))
    item, score = con.execute("SELECT item_id, score FROM recommend(?, 1)", (7,)).fetchone()
    total = con.execute("SELECT sum(contribution) FROM why_recommended(?, ?, 10000)", (7, item)).fetchone()[0]
    assert abs(total - score) <= 1e-4 * max(1.0, abs(score)), (total, score)

    # Errors are sqlite3 exceptions with the extension's message.
    try:
        con.execute("SELECT * FROM recommend(?, 3)", (None,)).fetchall()
        raise AssertionError("recommend(NULL, 3) did not fail")
    except sqlite3.OperationalError as e:
        assert str(e) == "recommend: user_id must be an integer, got NULL", str(e)
    print(f"python serving: ok ({sys.executable}, SQLite {sqlite3.sqlite_version})")


if __name__ == "__main__":
    main(sys.argv[1])
