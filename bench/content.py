"""External content against a copy: what adopting foryou costs an app that already logs
plays in its own table.

Run by `make bench` / `make bench-quick` after bench.py (or alone:
`.venv-bench/bin/python bench/content.py`, QUICK=1 for the small shape). Writes
bench/results-content{-quick}.json and .md.

The app's table is `plays(id INTEGER PRIMARY KEY, user_id, video_id, ms_watched,
video_ms, played_at)` with an index on (user_id, video_id), as the reference advises
(the user index is required; the item column in it spares reading rows), and a view `play_events` mapping its names
and units (the reference's example). The same foryou options (bench/settings.py) are
used two ways:

- copy: `feed` is foryou's own table, filled by `INSERT INTO feed SELECT ... FROM
  play_events`, and kept in sync by a trigger on `plays` (what adoption took before
  `content=`);
- content: `feed USING foryou(content = 'play_events', content_rowid = 'id')`, reading the
  plays in place.

Measured on each: the bytes the model adds to the app's file, the time from CREATE to the
first recommendation (create, copy, refit, first call), refit time (fresh processes,
alternating, medians), recommend(u, 10) latency (rounds alternating between the two),
the time to log a play (with the trigger's second write for copy), and the first call
after a user's fresh plays (fold-in).
"""

import json
import os
import shutil
import sys
import time

import numpy as np

import bench as B
from settings import FORYOU_CREATE, SEED

QUICK = B.QUICK
SUFFIX = B.SUFFIX
NAME = "sweep-250k" if QUICK else "sweep-1m"  # 250k or 1M plays (27k videos)
REFIT_REPS = 3 if QUICK else 5
FRESH_USERS = 7
FRESH_PLAYS = 100
KINDS = ("copy", "content")

APP_SCHEMA = """
CREATE TABLE plays(id INTEGER PRIMARY KEY, user_id INTEGER, video_id INTEGER,
                   ms_watched INTEGER, video_ms INTEGER, played_at INTEGER);
CREATE INDEX plays_user_video ON plays(user_id, video_id);
CREATE VIEW play_events AS
  SELECT id, user_id, video_id AS item_id, ms_watched / 1000.0 AS watch_time,
         video_ms / 1000.0 AS duration, played_at AS ts
  FROM plays;
"""
COPY_TRIGGER = """
CREATE TRIGGER plays_to_feed AFTER INSERT ON plays BEGIN
  INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts)
  VALUES (new.id, new.user_id, new.video_id, new.ms_watched / 1000.0, new.video_ms / 1000.0,
          new.played_at);
END;
"""
CREATE = {
    "copy": f"CREATE VIRTUAL TABLE feed USING foryou({FORYOU_CREATE})",
    "content": f"CREATE VIRTUAL TABLE feed USING foryou(content = 'play_events', "
               f"content_rowid = 'id', {FORYOU_CREATE})",
}
RECOMMEND = "SELECT item_id, score FROM recommend(?, 10)"


def write_app(data, path):
    """The app's database: its plays (ms as integers, as apps store them)."""
    B.remove_db(path)
    con = B.connect(path, ext=False)
    con.executescript(APP_SCHEMA)
    t = data.train
    con.execute("BEGIN")
    con.executemany(
        "INSERT INTO plays(user_id, video_id, ms_watched, video_ms, played_at) VALUES (?, ?, ?, ?, ?)",
        zip(t["user"].tolist(), t["item"].tolist(),
            np.rint(t["watch_time"] * 1000).astype(np.int64).tolist(),
            np.rint(t["duration"] * 1000).astype(np.int64).tolist(), t["ts"].tolist()))
    con.execute("COMMIT")
    size = B.db_bytes(con)
    con.close()
    return size


def adopt(kind, app, work, app_bytes, probe_user):
    """A copy of the app's file made into a recommender; times each step."""
    db = os.path.join(work, f"{kind}.db")
    B.remove_db(db)
    shutil.copy(app, db)
    con = B.connect(db)
    steps = {}
    t0 = time.perf_counter()
    con.execute(CREATE[kind])
    if kind == "copy":
        con.execute("BEGIN")
        con.execute("INSERT INTO feed(rowid, user_id, item_id, watch_time, duration, ts) "
                    "SELECT id, user_id, item_id, watch_time, duration, ts FROM play_events")
        con.execute("COMMIT")
        con.executescript(COPY_TRIGGER)
    t1 = time.perf_counter()
    report = json.loads(con.execute("SELECT foryou_refit('feed')").fetchone()[0])
    t2 = time.perf_counter()
    first = con.execute(RECOMMEND, (probe_user,)).fetchall()
    t3 = time.perf_counter()
    assert len(first) == 10, (kind, first)
    steps = {"create_and_copy_seconds": t1 - t0, "refit_seconds": t2 - t1,
             "first_call_ms": (t3 - t2) * 1e3, "to_first_recommendation_seconds": t3 - t0,
             "events": report["events"]}
    con.execute("VACUUM")
    steps["model_bytes"] = B.db_bytes(con) - app_bytes
    con.close()
    return db, steps


def refit_times(dbs, reps):
    """Full refits in fresh processes, the two kinds alternating."""
    runs = {k: [] for k in KINDS}
    for rep in range(reps):
        for kind in (KINDS if rep % 2 == 0 else KINDS[::-1]):
            runs[kind].append(B.foryou_refit(dbs[kind], {"mode": "full"})["seconds"])
        B.log(f"content: refit rep {rep + 1}/{reps}: " +
              ", ".join(f"{k} {runs[k][-1]:.2f} s" for k in KINDS))
    return {k: {"seconds": B.median(v), "runs": v} for k, v in runs.items()}


def serving(dbs, users):
    """recommend(u, 10) p50/p99 for users with no fresh plays: copy, content, content,
    copy; each kind's p50 is the median of its two runs' p50s."""
    cons = {k: B.connect(db) for k, db in dbs.items()}
    for con in cons.values():
        con.execute(RECOMMEND, (users[0],)).fetchall()  # decode the model
    runs = {k: [] for k in KINDS}
    for kind in KINDS + KINDS[::-1]:
        con = cons[kind]
        runs[kind].append(B.latency(lambda u: con.execute(RECOMMEND, (u,)).fetchall(), users))
    for con in cons.values():
        con.close()
    return {k: {"p50_ms": B.median([r["p50_ms"] for r in v]), "p99_ms": max(r["p99_ms"] for r in v),
                "calls": sum(r["calls"] for r in v)} for k, v in runs.items()}


def serving_user_index_only(db, users):
    """recommend(u, 10) over the content when its index has the user column only."""
    con = B.connect(db)
    con.executescript("DROP INDEX plays_user_video; CREATE INDEX plays_user_id ON plays(user_id);")
    con.execute(RECOMMEND, (users[0],)).fetchall()
    r = B.latency(lambda u: con.execute(RECOMMEND, (u,)).fetchall(), users)
    con.executescript("DROP INDEX plays_user_id; CREATE INDEX plays_user_video ON plays(user_id, video_id);")
    con.close()
    return r


def logging_plays(dbs, data, rng, rounds=10, plays=2000):
    """ms per play of logging `plays` plays into `plays` in one transaction (copy: its
    trigger writes each again into foryou's table); the kinds alternate, medians."""
    cons = {k: B.connect(db) for k, db in dbs.items()}
    newest = int(data.train["ts"].max()) + 10_000
    runs = {k: [] for k in KINDS}
    for r in range(rounds):
        rows = [(int(u), int(i), 15000, 20000, newest + r * plays + n) for n, (u, i) in
                enumerate(zip(rng.choice(data.user_ids, plays), rng.choice(data.item_ids, plays)))]
        for kind in (KINDS if r % 2 == 0 else KINDS[::-1]):
            con = cons[kind]
            t = time.perf_counter()
            con.execute("BEGIN")
            con.executemany("INSERT INTO plays(user_id, video_id, ms_watched, video_ms, played_at) "
                            "VALUES (?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
            runs[kind].append((time.perf_counter() - t) * 1e3 / plays)
    for con in cons.values():
        con.close()
    return {k: {"ms_per_play": B.median(v), "runs": v} for k, v in runs.items()}


def fresh_plays(dbs, data, rng):
    """Each of FRESH_USERS users logs FRESH_PLAYS plays into `plays` (one transaction);
    then their first recommend() (fold-in) and the second (cached). The same users,
    items and times for both kinds."""
    users = rng.choice(data.user_ids, FRESH_USERS, replace=False).tolist()
    items = rng.choice(data.item_ids, (FRESH_USERS, FRESH_PLAYS)).tolist()
    newest = int(data.train["ts"].max())
    out = {}
    for kind, db in dbs.items():
        con = B.connect(db)
        con.execute(RECOMMEND, (users[0],)).fetchall()
        first, second = [], []
        for j, u in enumerate(users):
            rows = [(int(u), int(i), 15000, 20000, newest + 1 + n) for n, i in enumerate(items[j])]
            con.execute("BEGIN")
            con.executemany("INSERT INTO plays(user_id, video_id, ms_watched, video_ms, played_at) "
                            "VALUES (?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
            t = time.perf_counter()
            a = con.execute(RECOMMEND, (u,)).fetchall()
            first.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            b = con.execute(RECOMMEND, (u,)).fetchall()
            second.append((time.perf_counter() - t) * 1e3)
            assert a == b and len(a) == 10, (kind, u)
        con.close()
        out[kind] = {"first_call_ms": B.median(first),
                     "second_call_ms": B.median(second)}
    return out


def same_feeds(dbs, users):
    """The two models are the same model: the same top 10 for these users."""
    cons = {k: B.connect(db) for k, db in dbs.items()}
    same = all(cons["copy"].execute(RECOMMEND, (u,)).fetchall() ==
               cons["content"].execute(RECOMMEND, (u,)).fetchall() for u in users)
    for con in cons.values():
        con.close()
    return same


def fmt(x, digits=3):
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def markdown(r):
    c, o = r["content"], r["copy"]
    L = [f"# foryou external content vs a copy{' (QUICK)' if r['quick'] else ''}", "",
         f"`{r['command']}`, {r['date']}, commit {r['versions']['git']}; {r['machine']['cpu']}, "
         f"{r['machine']['nproc']} CPUs, SQLite {r['machine']['sqlite']}. The app's table: {r['events']:,} plays of "
         f"{r['users']:,} users on {r['items']:,} videos (`{r['shape']}`), "
         f"{r['app_bytes'] / 1e6:.1f} MB with its user index. The same foryou options both "
         f"ways (bench/settings.py); the two models give the same feeds: {r['same_feeds']}. "
         f"Other processes used {r['other_load']:.0%} of the CPU during the run"
         f"{' (figures provisional)' if r['other_load'] > 0.05 else ''}.", "",
         "| | copy into foryou's table | content = (in place) | content / copy |",
         "|---|---|---|---|"]

    def row(label, a, b, unit="", digits=3):
        L.append(f"| {label} | {fmt(a, digits)}{unit} | {fmt(b, digits)}{unit} | {b / a:.3g}x |")

    row("bytes the model adds to the file", o["adopt"]["model_bytes"] / 1e6, c["adopt"]["model_bytes"] / 1e6, " MB")
    row("CREATE to first recommendation", o["adopt"]["to_first_recommendation_seconds"],
        c["adopt"]["to_first_recommendation_seconds"], " s")
    row("of which copying the plays", max(o["adopt"]["create_and_copy_seconds"], 1e-9),
        max(c["adopt"]["create_and_copy_seconds"], 1e-9), " s")
    row(f"full refit (median of {r['refit_reps']}, fresh processes)", o["refit"]["seconds"],
        c["refit"]["seconds"], " s")
    row("recommend(u, 10) p50", o["serving"]["p50_ms"], c["serving"]["p50_ms"], " ms")
    row("recommend(u, 10) p99", o["serving"]["p99_ms"], c["serving"]["p99_ms"], " ms")
    row("recommend(u, 10) p50, content index on user_id only", o["serving"]["p50_ms"],
        c["serving_user_index_only"]["p50_ms"], " ms")
    row("logging a play, 2,000 per transaction (copy: + the trigger's write)",
        o["logging"]["ms_per_play"], c["logging"]["ms_per_play"], " ms")
    row(f"first call after {FRESH_PLAYS} fresh plays (fold-in)", o["fresh"]["first_call_ms"],
        c["fresh"]["first_call_ms"], " ms")
    row("second call (cached)", o["fresh"]["second_call_ms"], c["fresh"]["second_call_ms"], " ms")
    t = r["targets"]
    L += ["", f"Targets (issue 14): refit with content ≤ 1.2x its own table: "
              f"{t['refit_ratio']:.3g}x ({'met' if t['refit_met'] else 'missed'}); recommend p50 ≤ 1.1x: "
              f"{t['recommend_ratio']:.3g}x ({'met' if t['recommend_met'] else 'missed'}).", ""]
    return "\n".join(L)


def main():
    rng = np.random.Generator(np.random.PCG64(SEED + 14))
    work = os.path.join(B.OUT, "content")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    started = time.time()
    load = B.OtherLoad().start()
    data = B.Data(NAME)
    app = os.path.join(work, "app.db")
    app_bytes = write_app(data, app)
    B.log(f"content: app table of {data.n_train:,} plays written ({time.time() - started:.1f} s, "
          f"{app_bytes / 1e6:.1f} MB)")
    probe = int(data.user_ids[0])
    dbs, res = {}, {k: {} for k in KINDS}
    for kind in KINDS:
        dbs[kind], res[kind]["adopt"] = adopt(kind, app, work, app_bytes, probe)
        B.log(f"content: {kind}: first recommendation after "
              f"{res[kind]['adopt']['to_first_recommendation_seconds']:.1f} s, model adds "
              f"{res[kind]['adopt']['model_bytes'] / 1e6:.1f} MB")
    users = rng.choice(data.user_ids, min(2000, len(data.user_ids)), replace=False).tolist()
    same = same_feeds(dbs, users[:50])
    for kind, v in refit_times(dbs, REFIT_REPS).items():
        res[kind]["refit"] = v
    for kind, v in serving(dbs, users).items():
        res[kind]["serving"] = v
    res["content"]["serving_user_index_only"] = serving_user_index_only(dbs["content"], users)
    for kind, v in fresh_plays(dbs, data, rng).items():
        res[kind]["fresh"] = v
    for kind, v in logging_plays(dbs, data, rng).items():
        res[kind]["logging"] = v
    refit_ratio = res["content"]["refit"]["seconds"] / res["copy"]["refit"]["seconds"]
    rec_ratio = res["content"]["serving"]["p50_ms"] / res["copy"]["serving"]["p50_ms"]
    con = B.connect(":memory:")
    versions = {"foryou": con.execute("SELECT foryou_version()").fetchone()[0], "git": B.git_commit()}
    con.close()
    results = {
        "quick": QUICK, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": ("QUICK=1 " if QUICK else "") + ".venv-bench/bin/python bench/content.py "
                   f"(part of make bench{'-quick' if QUICK else ''})",
        "machine": B.machine_info(), "versions": versions, "shape": NAME,
        "events": data.n_train, "users": len(data.user_ids), "items": len(data.item_ids),
        "app_bytes": app_bytes, "refit_reps": REFIT_REPS, "same_feeds": same, **res,
        "targets": {"refit_ratio": refit_ratio, "refit_met": refit_ratio <= 1.2,
                    "recommend_ratio": rec_ratio, "recommend_met": rec_ratio <= 1.1},
        "other_load": load.stop(), "runtime_seconds": time.time() - started,
    }
    with open(os.path.join(B.HERE, f"results-content{SUFFIX}.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
        f.write("\n")
    md = markdown(results)
    with open(os.path.join(B.HERE, f"results-content{SUFFIX}.md"), "w") as f:
        f.write(md)
    print(md)
    shutil.rmtree(work, ignore_errors=True)
    if not same:
        sys.exit("content: the copy and the content model gave different feeds")


if __name__ == "__main__":
    main()
