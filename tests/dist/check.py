"""The installed wheel as a user has it: `pip install sqlite-foryou`, then
`sqlite_foryou.load(con)` on the standard library's sqlite3. Run by tests/dist/run.sh
(make test-dist) in a fresh venv of Debian's /usr/bin/python3, outside the source tree.

Usage: python check.py main VERSION  (the venv's python, sqlite_foryou installed)
       python check.py refused       (a Python whose sqlite3 cannot load extensions)
"""

import json
import os
import sqlite3
import sys

import sqlite_foryou


def feed(con):
    # The README's Quick start (sql/demo.sql): 60 users, 90 videos in 3 genres; user u loves
    # genre u % 3 (item_id % 3): a favourite is replayed, anything else swiped after a tenth.
    con.execute("CREATE VIRTUAL TABLE feed USING foryou(confidence = linear, alpha = 10, skip_ratio = 0.5)")
    rows = []
    for u in range(1, 61):
        for n in range(1, 31):
            item = 1 + (u * 17 + n * 7) % 90
            duration = 10 + item * 37 % 50
            rows.append((u, item, (1.5 if item % 3 == u % 3 else 0.1) * duration, duration))
    with con:
        con.executemany("INSERT INTO feed(user_id, item_id, watch_time, duration) VALUES (?, ?, ?, ?)", rows)
    report = json.loads(con.execute("SELECT foryou_refit('feed')").fetchone()[0])
    assert (report["events"], report["users"], report["items"]) == (1800, 60, 90), report
    top = con.execute("SELECT item_id, score FROM recommend(?, 10)", (1,)).fetchall()
    watched = {i for u, i, _, _ in rows if u == 1}
    assert len(top) == 10, top
    assert all(i not in watched for i, _ in top), (top, "watched videos are left out")
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True), top
    # User 1 loves cooking (item_id % 3 = 1): ten unwatched cooking videos, the first five
    # those the README shows.
    assert all(i % 3 == 1 for i, _ in top), top
    assert [i for i, _ in top[:5]] == [55, 4, 73, 76, 7], top
    return top


def main():
    path = sqlite_foryou.loadable_path()
    assert path.startswith(sys.prefix) and "site-packages" in path, f"{path}: not the installed package"
    assert os.path.isfile(path + ".so"), path
    assert sqlite_foryou.__version__ == sys.argv[2], (sqlite_foryou.__version__, sys.argv[2])

    con = sqlite3.connect(":memory:")
    sqlite_foryou.load(con)
    assert con.execute("SELECT foryou_version()").fetchone()[0] == sqlite_foryou.__version__
    top = feed(con)
    # load() leaves extension loading off again: SQL's load_extension() is refused.
    try:
        con.execute("SELECT load_extension(?)", (path,))
        raise AssertionError("load_extension() from SQL was allowed after load()")
    except sqlite3.OperationalError as e:
        assert "not authorized" in str(e), e

    # loadable_path() itself, with or without .so, as load_extension() takes it.
    for p in (path, path + ".so"):
        other = sqlite3.connect(":memory:")
        other.enable_load_extension(True)
        other.load_extension(p)
        assert feed(other) == top

    # A connection without enable_load_extension (what a Python built without
    # --enable-loadable-sqlite-extensions gives): an error that says what to do.
    class NoLoading:
        pass
    try:
        sqlite_foryou.load(NoLoading())
        raise AssertionError("load() of a connection that cannot load extensions did not fail")
    except RuntimeError as e:
        for words in ("--enable-loadable-sqlite-extensions", "apsw", "sqlean.py", "NoLoading"):
            assert words in str(e), (words, str(e))
    print(f"dist: the wheel on {sys.executable} (SQLite {sqlite3.sqlite_version}): "
          f"load(), loadable_path() with and without .so, recommend(1, 10) = {[i for i, _ in top]}")


def refused():
    con = sqlite3.connect(":memory:")
    assert not hasattr(con, "enable_load_extension"), "this Python can load extensions"
    try:
        sqlite_foryou.load(con)
        raise AssertionError("load() did not fail")
    except RuntimeError as e:
        assert "sqlite3.Connection has no enable_load_extension()" in str(e), str(e)
    print(f"dist: the wheel on {sys.executable}, whose sqlite3 cannot load extensions: load() says so")


if __name__ == "__main__":
    refused() if sys.argv[1] == "refused" else main()
