"""The sqlite-utils plugin as a user has it: `sqlite-utils install sqlite-utils-sqlite-foryou`
done, then the sqlite-utils command line against a database. Builds the test database
(sql/demo.sql's events: 60 users, 90 videos in 3 genres, here with titles), refits it and
checks a feed, all through `sqlite-utils query`. Run by tests/plugins/run.sh.

Usage: python check_sqlite_utils.py SQLITE_UTILS DB VERSION
"""

import json
import subprocess
import sys

GENRE = "CASE {v} % 3 WHEN 0 THEN 'comedy' WHEN 1 THEN 'cooking' ELSE 'pets' END"
STATEMENTS = [
    "CREATE VIRTUAL TABLE feed USING foryou(confidence = linear, alpha = 10, skip_ratio = 0.5)",
    "CREATE TABLE videos(item_id INTEGER PRIMARY KEY, title TEXT, genre TEXT, duration REAL)",
    # 90 videos in 3 genres, 10 to 59 seconds long, titled like 'cooking #55'.
    "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 90) "
    f"INSERT INTO videos SELECT v, ({GENRE.format(v='v')}) || ' #' || v, {GENRE.format(v='v')}, "
    "10 + v * 37 % 50 FROM n",
    # 60 users; user u loves genre u % 3. Each is shown 30 videos: a favourite is replayed
    # (1.5 times its length), anything else swiped away after a tenth.
    "WITH RECURSIVE u(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM u WHERE v < 60), "
    "n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 30) "
    "INSERT INTO feed(user_id, item_id, watch_time, duration, ts) "
    "SELECT u.v, videos.item_id, CASE WHEN videos.item_id % 3 = u.v % 3 THEN 1.5 * videos.duration "
    "ELSE 0.1 * videos.duration END, videos.duration, 1700000000 + 100 * u.v + n.v "
    "FROM u, n JOIN videos ON videos.item_id = 1 + (u.v * 17 + n.v * 7) % 90",
]
TUNED = [
    # A second model that tunes alpha and regularization at its refit (docs/reference.md's
    # tuning example: 300 users who each love one of 3 genres, 40 events each, 150 items).
    "CREATE VIRTUAL TABLE tuned USING foryou(factors = 16, skip_ratio = 0.5)",
    "WITH RECURSIVE u(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM u WHERE v < 300), "
    "n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 40) "
    "INSERT INTO tuned(user_id, item_id, watch_time, duration, ts) "
    "SELECT u.v, 1 + (u.v * 31 + n.v * 7) % 150, CASE WHEN (u.v * 31 + n.v * 7) % 3 = u.v % 3 THEN 30 ELSE 2 END, "
    "20, 1700000000 + 100 * u.v + n.v FROM u, n",
]


def run(*args):
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def query(tool, db, sql):
    return json.loads(run(tool, "query", db, sql))


def main(tool, db, version):
    plugins = json.loads(run(tool, "plugins"))
    assert plugins == [{"name": "sqlite-utils-sqlite-foryou", "hooks": ["prepare_connection"],
                        "version": version}], plugins
    assert query(tool, db, "select foryou_version() as v") == [{"v": version}]
    for sql in STATEMENTS:
        query(tool, db, sql)
    counts = query(tool, db, "select count(*) as events, count(distinct user_id) as users, "
                             "count(distinct item_id) as items from feed")
    assert counts == [{"events": 1800, "users": 60, "items": 90}], counts
    report = json.loads(query(tool, db, "select foryou_refit('feed') as report")[0]["report"])
    assert (report["version"], report["events"], report["users"], report["items"]) == (1, 1800, 60, 90), report

    # The command, word for word, then the feed joined with the catalogue.
    top = query(tool, db, "select * from recommend(1, 5)")
    assert [r["item_id"] for r in top] == [55, 4, 73, 76, 7], top
    assert [r["rank"] for r in top] == [1, 2, 3, 4, 5], top
    assert [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True), top
    titles = query(tool, db, "select title from recommend(1, 5) join videos using (item_id) order by rank")
    assert [r["title"] for r in titles] == ["cooking #55", "cooking #4", "cooking #73", "cooking #76",
                                            "cooking #7"], titles
    table = run(tool, "query", db, "select rank, item_id, round(score, 3) as score from similar_items(2, 3)",
                "--table")
    assert [line.split()[1] for line in table.splitlines()[2:]] == ["23", "44", "71"], table
    # Another command than query opens the database through the same hook.
    rows = json.loads(run(tool, "rows", db, "feed", "--limit", "1"))
    assert len(rows) == 1 and rows[0]["user_id"] == 1, rows
    # A second model (for the Datasette pages): now the model must be named.
    for sql in TUNED:
        query(tool, db, sql)
    tuned = json.loads(query(tool, db, "select foryou_refit('tuned') as report")[0]["report"])
    assert tuned["events"] == 12000 and len(tuned["tuned"]["candidates"]) == 4, tuned
    result = subprocess.run([tool, "query", db, "select * from recommend(1, 5)"], capture_output=True, text=True)
    assert result.returncode == 1 and "2 foryou tables exist (feed, tuned)" in result.stderr, result
    named = query(tool, db, "select item_id from recommend(1, 5, 'feed')")
    assert [r["item_id"] for r in named] == [r["item_id"] for r in top], named
    print(f"plugins: sqlite-utils {run(tool, '--version').split()[-1]} with sqlite-utils-sqlite-foryou "
          f"{version}: refit 1800 events, recommend(1, 5) = {[r['item_id'] for r in top]}, "
          "similar_items(2, 3) = 23 44 71")


if __name__ == "__main__":
    main(*sys.argv[1:4])
