#!/usr/bin/env python3
"""The foryou benchmark (issue 5): foryou side by side with implicit and sqlite-vec.

Run through `make bench` / `make bench-quick` (bash bench/run.sh, QUICK=1 for the quick
variant). What is measured and how: bench/README.md. Outputs: bench/results.{json,md} and
bench/plot.png (full), bench/results-quick.{json,md} and bench/plot-quick.png (quick).
Scratch files go to bench/out/ (git-ignored).
"""

import datetime
import json
import math
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time

import numpy as np
import scipy
import scipy.sparse as sp

import gen
from settings import ALPHA, FACTORS, FORYOU_CREATE, ITERATIONS, K, REGULARIZATION, SEED, THREADS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
EXT = os.environ.get("FORYOU_EXT") or os.path.join(ROOT, "target", "release", "libforyou")
DATA = os.environ.get("FORYOU_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
KUAIREC = os.path.join(DATA, "kuairec-small-watchratio-sample", "random.txt")
QUICK = os.environ.get("QUICK", "0") not in ("", "0")
SUFFIX = "-quick" if QUICK else ""

TRAIN_SHARE = 0.8
COLUMNS = "user_id, item_id, watch_time, duration, ts"
PLAIN_DDL = "CREATE TABLE plain(user_id INTEGER, item_id INTEGER, watch_time REAL, duration REAL, ts INTEGER)"

if QUICK:
    DATASETS = ["small", "kuairec"]
    REFIT_SWEEP = ["sweep-250k", "sweep-500k", "small"]
    CATALOGUE = ["cat-10k", "cat-100k"]
    INGEST_REPS = {"small": 5, "kuairec": 5}
    REFIT_REPS = {"small": 3, "kuairec": 3, "sweep-250k": 3, "sweep-500k": 3}
    ROUND_BUDGET = 0.6  # seconds of calls per latency round
else:
    DATASETS = ["small", "kuairec", "ml20m"]
    REFIT_SWEEP = ["sweep-1m", "sweep-5m", "ml20m"]
    CATALOGUE = ["cat-10k", "cat-100k", "cat-1m"]
    INGEST_REPS = {"small": 5, "kuairec": 5, "ml20m": 1}
    REFIT_REPS = {"small": 5, "kuairec": 5, "ml20m": 3, "sweep-1m": 3, "sweep-5m": 3}
    ROUND_BUDGET = 2.0
# Models whose filtered serving is measured (allow-lists of 100 items, 10% and 90%).
FILTERED = ["cat-10k", "cat-100k"] if QUICK else ["ml20m", "cat-1m"]
LATENCY_ROUNDS = 5
MIN_CALLS, MAX_CALLS = 200, 3000
FOLDIN_USERS = 7
FOLDIN_EVENTS = 100

T_START = time.time()


def log(msg):
    print(f"[{time.time() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def median(xs):
    return float(np.median(np.asarray(xs, dtype=np.float64)))


# ---------------------------------------------------------------------------------------
# machine
# ---------------------------------------------------------------------------------------

def cpu_busy_share(seconds=2.0):
    """Share of all CPU time that was not idle over `seconds` (from /proc/stat)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def other_processes():
    """Processes using CPU now, other than this benchmark (sampled over one second)."""
    def ticks():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    s = f.read()
                name = s[s.index("(") + 1:s.rindex(")")]
                fields = s[s.rindex(")") + 2:].split()
                out[int(pid)] = (name, int(fields[11]) + int(fields[12]))
            except (OSError, ValueError):
                pass
        return out
    a = ticks()
    time.sleep(1.0)
    b = ticks()
    hz = os.sysconf("SC_CLK_TCK")
    mine = {os.getpid(), os.getppid()}
    busy = []
    for pid, (name, t) in b.items():
        if pid in mine or pid not in a:
            continue
        share = (t - a[pid][1]) / hz
        if share > 0.05:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
            except OSError:
                cmd = name
            busy.append({"pid": pid, "cpu": round(share, 2), "cmd": cmd or name})
    return sorted(busy, key=lambda p: -p["cpu"])


LOAD_SAMPLES = []


class OtherLoad:
    """Share of the machine's CPU time used by processes other than this benchmark (and
    its waited-for children) between start() and stop(): /proc/stat busy time minus our
    own os.times()."""

    def __init__(self):
        self.t0 = None

    @staticmethod
    def _snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(v[:8]) - v[3] - v[4]) / hz  # all but idle and iowait (guest is in user)
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return time.time(), busy, own

    def start(self):
        self.t0 = self._snap()
        return self

    def stop(self):
        w1, b1, o1 = self._snap()
        w0, b0, o0 = self.t0
        wall = max(1e-9, w1 - w0)
        return max(0.0, ((b1 - b0) - (o1 - o0)) / (wall * (os.cpu_count() or 1)))


def sample_load(section):
    """Other processes using the CPU as a section starts (one second of sampling)."""
    others = other_processes()
    LOAD_SAMPLES.append({"section": section, "at_s": round(time.time() - T_START, 1),
                         "loadavg": [round(x, 2) for x in os.getloadavg()], "other_processes": others})
    if others:
        log(f"note: other processes using the CPU at {section}: " +
            ", ".join(f"{p['cmd'][:50]} ({p['cpu']:.0%})" for p in others[:3]))


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"nproc": os.cpu_count(), "cpu": model, "memory_gib": round(mem_gib, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version}


def git_commit():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------

class Data:
    """One dataset: training events (first 80% by time) and the held-out relevant pairs."""

    def __init__(self, name):
        self.name = name
        if name == "kuairec":
            ev = gen.read_kuairec(KUAIREC)
            self.relevant_rule = "held-out rows with watch ratio >= 2.0 (random 80/20 split)"
        else:
            ev = gen.generate(name, seed=SEED)
            self.relevant_rule = "held-out events with watch ratio >= 0.7 (last 20% of time)"
        n = len(ev["user"])
        cut = int(n * TRAIN_SHARE) if name in DATASETS else n
        self.train = {k: v[:cut] for k, v in ev.items()}
        test = {k: v[cut:] for k, v in ev.items()}
        self.n_events = n
        self.n_train = cut
        # implicit's matrix: per pair R = min(sum of min(r, 10), 10), as foryou's `ratio`.
        t = self.train
        self.user_ids, uidx = np.unique(t["user"], return_inverse=True)
        self.item_ids, iidx = np.unique(t["item"], return_inverse=True)
        r = np.minimum(t["watch_time"] / t["duration"], 10.0).astype(np.float64)
        m = sp.coo_matrix((r, (uidx, iidx)), shape=(len(self.user_ids), len(self.item_ids))).tocsr()
        m.sum_duplicates()
        m.data = np.minimum(m.data, 10.0)
        self.matrix = m.astype(np.float32)
        self.pairs = self.matrix.nnz
        self.uidx = uidx
        # held-out relevant pairs: users with training events, items they have not watched
        if cut < n:
            ratio = test["watch_time"] / test["duration"]
            threshold = 2.0 if name == "kuairec" else 0.7
            keep = ratio >= threshold
            hu, hi = test["user"][keep], test["item"][keep]
            rows = np.searchsorted(self.user_ids, hu)
            rows = np.minimum(rows, len(self.user_ids) - 1)
            known = self.user_ids[rows] == hu
            hu, hi, rows = hu[known], hi[known], rows[known]
            cols = np.searchsorted(self.item_ids, hi)
            cols_c = np.minimum(cols, len(self.item_ids) - 1)
            in_catalogue = self.item_ids[cols_c] == hi
            watched = np.zeros(len(hu), dtype=bool)
            w = np.flatnonzero(in_catalogue)
            watched[w] = np.asarray(self.matrix[rows[w], cols_c[w]]).ravel() != 0
            # an explicit stored zero (watch ratio 0) is still a watched pair
            if np.any(self.matrix.data == 0):
                seen = self.matrix.copy()
                seen.data[:] = 1.0
                watched[w] = np.asarray(seen[rows[w], cols_c[w]]).ravel() != 0
            pairs = np.unique(np.stack([hu[~watched], hi[~watched]], axis=1), axis=0)
            self.holdout = pairs
        else:
            self.holdout = np.zeros((0, 2), dtype=np.int64)

    def shape(self):
        return {"events": int(self.n_events), "train_events": int(self.n_train), "users": int(len(self.user_ids)),
                "items": int(len(self.item_ids)), "pairs": int(self.pairs),
                "holdout_pairs": int(len(self.holdout)),
                "holdout_users": int(len(np.unique(self.holdout[:, 0]))) if len(self.holdout) else 0,
                "relevant": self.relevant_rule if len(self.holdout) else None}


def connect(path, ext=True):
    con = sqlite3.connect(path, isolation_level=None)
    if ext:
        con.enable_load_extension(True)
        con.load_extension(EXT)
    return con


def write_staging(data, path):
    if os.path.exists(path):
        os.remove(path)
    con = connect(path, ext=False)
    con.execute("CREATE TABLE staging(user_id INTEGER, item_id INTEGER, watch_time REAL, duration REAL, ts INTEGER)")
    t = data.train
    con.execute("BEGIN")
    con.executemany("INSERT INTO staging VALUES (?, ?, ?, ?, ?)",
                    zip(t["user"].tolist(), t["item"].tolist(), t["watch_time"].tolist(),
                        t["duration"].tolist(), t["ts"].tolist()))
    con.execute("COMMIT")
    con.close()


def db_bytes(con):
    return con.execute("PRAGMA page_count").fetchone()[0] * con.execute("PRAGMA page_size").fetchone()[0]


def remove_db(path):
    for suffix in ("", "-journal", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def ingest_once(kind, path, staging, n):
    """Creates a fresh database at `path` and times one INSERT ... SELECT of the staging
    rows (BEGIN ... COMMIT). Returns (seconds, database bytes)."""
    remove_db(path)
    con = connect(path, ext=(kind == "foryou"))
    con.execute(f"ATTACH DATABASE '{staging}' AS src")
    if kind == "foryou":
        con.execute(f"CREATE VIRTUAL TABLE feed USING foryou({FORYOU_CREATE})")
        target = "feed"
    else:
        con.execute(PLAIN_DDL)
        if kind == "plain+index":
            con.execute("CREATE INDEX plain_user_item ON plain(user_id, item_id)")
        target = "plain"
    started = time.perf_counter()
    con.execute("BEGIN")
    con.execute(f"INSERT INTO {target}({COLUMNS}) SELECT {COLUMNS} FROM src.staging")
    con.execute("COMMIT")
    seconds = time.perf_counter() - started
    con.execute("DETACH DATABASE src")
    # (counted on the shadow table: a full scan through the virtual table is quadratic in
    # this build, see scan_diagnostic)
    count = con.execute(f"SELECT count(*) FROM {'feed_events' if kind == 'foryou' else target}").fetchone()[0]
    assert count == n, (kind, count, n)
    size = db_bytes(con)
    con.close()
    return seconds, size


def scan_diagnostic(db):
    """Reading events back through the virtual table (`SELECT ... FROM feed`): time per row
    for the first 50k and the first 200k rows. A paged scan that seeks to each page costs
    the same per row for both; one that rescans from the start for each page costs more
    per row the further it gets (quadratic in total)."""
    con = connect(db)
    out = {}
    n = con.execute("SELECT count(*) FROM feed_events").fetchone()[0]
    for rows in (50_000, 200_000):
        if rows > n:
            break
        t = time.perf_counter()
        got = con.execute(f"SELECT count(*) FROM (SELECT rowid FROM feed LIMIT {rows})").fetchone()[0]
        out[f"first_{rows // 1000}k_us_per_row"] = (time.perf_counter() - t) / got * 1e6
    con.close()
    return out


def measure_ingest(data, workdir, reps, with_index=True):
    staging = os.path.join(workdir, "staging.db")
    t = time.time()
    write_staging(data, staging)
    log(f"{data.name}: staging table of {data.n_train} events written ({time.time() - t:.1f} s)")
    kinds = ["plain", "foryou"] + (["plain+index"] if with_index else [])
    times = {k: [] for k in kinds}
    sizes = {}
    for rep in range(reps):
        for kind in (kinds if rep % 2 == 0 else kinds[::-1]):
            path = os.path.join(workdir, "feed.db" if kind == "foryou" else f"{kind}.db")
            s, size = ingest_once(kind, path, staging, data.n_train)
            times[kind].append(s)
            sizes[kind] = size
        log(f"{data.name}: ingest rep {rep + 1}/{reps}: " +
            ", ".join(f"{k} {times[k][-1]:.2f} s" for k in kinds))
    for kind in kinds:
        if kind != "foryou":
            remove_db(os.path.join(workdir, f"{kind}.db"))
    os.remove(staging)
    res = {"reps": reps, "events": data.n_train}
    for kind in kinds:
        s = median(times[kind])
        res[kind] = {"seconds": s, "events_per_s": data.n_train / s, "runs": times[kind],
                     "bytes_per_event": sizes[kind] / data.n_train}
    res["ratio_foryou_plain"] = res["foryou"]["events_per_s"] / res["plain"]["events_per_s"]
    res["vtab_scan"] = scan_diagnostic(os.path.join(workdir, "feed.db"))
    return res


# ---------------------------------------------------------------------------------------
# refit (subprocesses, for peak RSS)
# ---------------------------------------------------------------------------------------

def run_worker(args):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "worker.py")] + args, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed with exit code {proc.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    # Peak RSS is the child's own VmHWM (read by it at the end). Not ru_maxrss from
    # wait4/RUSAGE_CHILDREN: Linux carries the forking parent's high-water mark into the
    # child's ru_maxrss across exec, so every child would report at least this process's size.
    result["peak_rss_kb"] = result["hwm_kb"]
    result["ru_maxrss_kb"] = rusage.ru_maxrss
    return result


def foryou_refit(db, options):
    return run_worker(["foryou", db, EXT, json.dumps(options)])


def implicit_fit(matrix_path, iterations, factors_out="-"):
    return run_worker(["implicit", matrix_path, str(iterations), factors_out])


def measure_refit(data, workdir, reps, db=None, keep_factors=True):
    """foryou_refit on `db` (the ingested training events) and implicit fit() on the same
    events; medians over `reps` runs, each in a fresh process."""
    res = {"reps": reps, "events": data.n_train}
    matrix_path = os.path.join(workdir, "matrix.npz")
    sp.save_npz(matrix_path, data.matrix, compressed=False)
    fy, im = [], []
    # one 1-iteration refit first, to split fixed cost (read events, write factors) from sweeps
    one = foryou_refit(db, {"mode": "full", "iterations": 1})
    for rep in range(reps):
        fy.append(foryou_refit(db, {"mode": "full"}))
        im.append(implicit_fit(matrix_path, ITERATIONS,
                               os.path.join(workdir, "implicit.npz") if (keep_factors and rep == 0) else "-"))
        log(f"{data.name}: refit rep {rep + 1}/{reps}: foryou {fy[-1]['seconds']:.2f} s "
            f"({fy[-1]['peak_rss_kb'] / 1024:.0f} MiB), implicit {im[-1]['seconds']:.2f} s "
            f"({im[-1]['peak_rss_kb'] / 1024:.0f} MiB)")
    os.remove(matrix_path)
    f_s, i_s = median([r["seconds"] for r in fy]), median([r["seconds"] for r in im])
    sweep = (f_s - one["seconds"]) / (ITERATIONS - 1)
    res["foryou"] = {
        "seconds": f_s, "runs": [r["seconds"] for r in fy],
        "per_iteration": f_s / ITERATIONS,
        "one_iteration_refit_seconds": one["seconds"],
        "per_sweep_estimate": sweep, "fixed_cost_estimate": one["seconds"] - sweep,
        "report": fy[-1]["report"],
        "peak_rss_mib": median([r["peak_rss_kb"] for r in fy]) / 1024,
        "rss_before_mib": median([r["rss_before_kb"] for r in fy]) / 1024,
    }
    res["implicit"] = {
        "seconds": i_s, "runs": [r["seconds"] for r in im], "per_iteration": i_s / ITERATIONS,
        "peak_rss_mib": median([r["peak_rss_kb"] for r in im]) / 1024,
        "rss_before_mib": median([r["rss_before_kb"] for r in im]) / 1024,
    }
    res["ratio_time"] = f_s / i_s
    res["ratio_peak_rss"] = res["foryou"]["peak_rss_mib"] / res["implicit"]["peak_rss_mib"]
    res["ratio_rss_increment"] = ((res["foryou"]["peak_rss_mib"] - res["foryou"]["rss_before_mib"]) /
                                  max(1e-9, res["implicit"]["peak_rss_mib"] - res["implicit"]["rss_before_mib"]))
    return res


# ---------------------------------------------------------------------------------------
# quality
# ---------------------------------------------------------------------------------------

def implicit_model(user_factors, item_factors):
    from implicit.cpu.als import AlternatingLeastSquares
    model = AlternatingLeastSquares(factors=user_factors.shape[1], regularization=REGULARIZATION, alpha=ALPHA,
                                    num_threads=THREADS, random_state=SEED)
    model.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
    model.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    return model


def seen_matrix(data):
    seen = data.matrix.copy()
    seen.data[:] = 1.0
    return seen


def ranking_metrics(ranked, relevant, k):
    """The formulas of foryou_evaluate (src/model/evaluate.rs)."""
    n, prec, ndcg = 0, 0.0, 0.0
    for u, rel in relevant.items():
        if not rel:
            continue
        lst = ranked.get(u, [])[:k]
        hits, dcg = 0, 0.0
        for at, item in enumerate(lst):
            if item in rel:
                hits += 1
                dcg += 1.0 / math.log2(at + 2)
        idcg = sum(1.0 / math.log2(at + 2) for at in range(min(k, len(rel))))
        n += 1
        prec += hits / k
        ndcg += dcg / idcg
    return {"users": n, "precision": prec / max(1, n), "ndcg": ndcg / max(1, n)}


def measure_quality(data, workdir, db):
    con = connect(db)
    con.execute("CREATE TEMP TABLE holdout(user_id INTEGER, item_id INTEGER)")
    con.execute("BEGIN")
    con.executemany("INSERT INTO temp.holdout VALUES (?, ?)", data.holdout.tolist())
    con.execute("COMMIT")
    started = time.perf_counter()
    fy = json.loads(con.execute("SELECT foryou_evaluate('feed', 'temp.holdout', ?)", (K,)).fetchone()[0])
    fy_seconds = time.perf_counter() - started
    con.close()
    relevant = {}
    for u, i in data.holdout.tolist():
        relevant.setdefault(u, set()).add(i)
    f = np.load(os.path.join(workdir, "implicit.npz"))
    model = implicit_model(f["user_factors"], f["item_factors"])
    users = np.array(sorted(relevant), dtype=np.int64)
    rows = np.searchsorted(data.user_ids, users)
    seen = seen_matrix(data)
    ranked = {}
    for lo in range(0, len(users), 20000):
        r = rows[lo:lo + 20000]
        ids, _ = model.recommend(r, seen[r], N=K, filter_already_liked_items=True)
        for u, row in zip(users[lo:lo + 20000].tolist(), ids):
            ranked[u] = [int(data.item_ids[i]) for i in row if i >= 0]
    im = ranking_metrics(ranked, relevant, K)
    return {
        "k": K,
        "foryou": {"ndcg": fy["ndcg"], "precision": fy["precision"], "users": fy["users"],
                   "evaluate_seconds": fy_seconds},
        "implicit": im,
        "ratio_ndcg": fy["ndcg"] / im["ndcg"] if im["ndcg"] else None,
    }


# ---------------------------------------------------------------------------------------
# serving
# ---------------------------------------------------------------------------------------

def latency(fn, args):
    """p50 (median over rounds of per-round p50) and p99 (all calls pooled) in ms of
    fn(arg), with arg cycling through `args`; per-round call count from a probe so that a
    round takes about ROUND_BUDGET seconds (between MIN_CALLS and MAX_CALLS calls)."""
    pc = time.perf_counter_ns
    for a in args[:20]:  # warm-up and probe
        fn(a)
    t0 = pc()
    for a in args[20:40]:
        fn(a)
    per_call = (pc() - t0) / 20 / 1e9
    n = int(min(MAX_CALLS, max(MIN_CALLS, ROUND_BUDGET / max(per_call, 1e-7))))
    pooled, p50s = [], []
    pos = 40
    for _ in range(LATENCY_ROUNDS):
        xs = np.empty(n)
        for j in range(n):
            a = args[pos % len(args)]
            pos += 1
            t = pc()
            fn(a)
            xs[j] = pc() - t
        xs /= 1e6
        p50s.append(float(np.percentile(xs, 50)))
        pooled.append(xs)
    allx = np.concatenate(pooled)
    return {"p50_ms": median(p50s), "p99_ms": float(np.percentile(allx, 99)), "calls": int(len(allx)),
            "round_p50s_ms": [round(x, 4) for x in p50s]}


def read_factors(con, table):
    """Decodes foryou's documented factor format (docs/reference.md, Storage): ids little-endian i64,
    factors little-endian f32 row-major."""
    ids, facs = [], []
    for chunk_ids, chunk_factors in con.execute(f"SELECT ids, factors FROM {table} ORDER BY chunk"):
        i = np.frombuffer(chunk_ids, dtype="<i8")
        ids.append(i)
        facs.append(np.frombuffer(chunk_factors, dtype="<f4").reshape(len(i), -1))
    return np.concatenate(ids), np.concatenate(facs).astype(np.float32)


def watched_by(con, users):
    out = {}
    for u in users:
        out[u] = {r[0] for r in con.execute("SELECT item_id FROM feed WHERE user_id = ?", (u,))}
    return out


def measure_serving(name, db, data, rng, vec=True):
    """recommend / similar_items through SQL; implicit recommend / similar_items on the
    same vectors (read from foryou's shadow tables); sqlite-vec vec0 KNN on them."""
    con = connect(db)
    res = {}
    user_ids, X = read_factors(con, "feed_users")
    item_ids, Y = read_factors(con, "feed_items")
    res["items"] = int(len(item_ids))
    res["users"] = int(len(user_ids))
    n_args = 4096
    users = rng.choice(user_ids, n_args).tolist()
    items = rng.choice(item_ids, n_args).tolist()

    t = time.perf_counter()
    con.execute("SELECT item_id, score FROM recommend(?, 10)", (users[0],)).fetchall()
    res["foryou_first_call_ms"] = (time.perf_counter() - t) * 1e3  # decodes the model into the cache
    overhead = latency(lambda u: con.execute("SELECT ?", (u,)).fetchall(), users)
    res["python_sqlite_overhead_ms"] = overhead["p50_ms"]

    rec_sql = "SELECT item_id, score FROM recommend(?, 10)"
    sim_sql = "SELECT item_id, score FROM similar_items(?, 10)"
    res["foryou_recommend"] = latency(lambda u: con.execute(rec_sql, (u,)).fetchall(), users)
    log(f"{name}: foryou recommend p50 {res['foryou_recommend']['p50_ms']:.3f} ms")
    res["foryou_similar"] = latency(lambda i: con.execute(sim_sql, (i,)).fetchall(), items)
    log(f"{name}: foryou similar_items p50 {res['foryou_similar']['p50_ms']:.3f} ms")
    if data is not None:
        # cost by the user's history length: the 10% heaviest users vs the lighter half
        hist = dict(zip(data.user_ids.tolist(), np.diff(data.matrix.indptr).tolist()))
        known = [u for u in user_ids.tolist() if u in hist]
        by = sorted(known, key=lambda u: hist[u])
        heavy, light = by[-max(1, len(by) // 10):], by[:max(1, len(by) // 2)]
        for label, group in (("heavy", heavy), ("light", light)):
            g = rng.choice(np.array(group), n_args).tolist()
            r = latency(lambda u: con.execute(rec_sql, (u,)).fetchall(), g)
            r["median_watched_pairs"] = median([hist[u] for u in group])
            res[f"foryou_recommend_{label}_users"] = r
    res["foryou_recommend_model_arg"] = latency(
        lambda u: con.execute("SELECT item_id, score FROM recommend(?, 10, 'feed')", (u,)).fetchall(), users)

    # correctness: foryou's top-10 against numpy on the stored factors, watched items excluded
    check_users = users[:50]
    watched = watched_by(con, check_users)
    item_pos = {int(i): p for p, i in enumerate(item_ids.tolist())}
    user_pos = {int(u): p for p, u in enumerate(user_ids.tolist())}
    agree = []
    for u in check_users:
        got = [r[0] for r in con.execute(rec_sql, (u,))]
        s = Y @ X[user_pos[u]]
        for i in watched[u]:
            if i in item_pos:
                s[item_pos[i]] = -np.inf
        top = item_ids[np.argsort(-s, kind="stable")[:10]].tolist()
        agree.append(len(set(got) & set(top)) / 10)
    res["foryou_recommend_agrees_with_numpy"] = float(np.mean(agree))

    # implicit on the same vectors
    model = implicit_model(X, Y)
    rows = {u: user_pos[u] for u in set(users)}
    if data is not None and np.array_equal(data.user_ids, user_ids) and np.array_equal(data.item_ids, item_ids):
        seen = seen_matrix(data)
    else:
        seen = user_items_from_db(con, user_ids, item_ids)
    seen_rows = {u: seen[rows[u]] for u in rows}  # sliced before the clock, in implicit's favour
    iarg = [(rows[u], seen_rows[u]) for u in users]
    res["implicit_recommend"] = latency(lambda a: model.recommend(a[0], a[1], N=10), iarg)
    log(f"{name}: implicit recommend p50 {res['implicit_recommend']['p50_ms']:.3f} ms")
    ipos = [item_pos[i] for i in items]
    res["implicit_similar"] = latency(lambda p: model.similar_items(p, N=10), ipos)
    log(f"{name}: implicit similar_items p50 {res['implicit_similar']['p50_ms']:.3f} ms")
    con.close()

    if vec:
        res.update(measure_sqlite_vec(name, X, Y, user_pos, item_pos, users, items))
    if name in FILTERED:
        res["filters"] = measure_filters(name, db, X, Y, item_ids, user_pos, users, rng)
    res["ratio_recommend_implicit"] = res["foryou_recommend"]["p50_ms"] / res["implicit_recommend"]["p50_ms"]
    res["ratio_similar_implicit"] = res["foryou_similar"]["p50_ms"] / res["implicit_similar"]["p50_ms"]
    if vec:
        res["ratio_recommend_vec"] = res["foryou_recommend"]["p50_ms"] / res["vec_knn_mips"]["p50_ms"]
        res["ratio_similar_vec"] = res["foryou_similar"]["p50_ms"] / res["vec_knn_cosine"]["p50_ms"]
    return res


def user_items_from_db(con, user_ids, item_ids):
    u, i = [], []
    for a, b in con.execute("SELECT user_id, item_id FROM feed_events"):  # the shadow table: see scan_diagnostic
        u.append(a)
        i.append(b)
    u = np.searchsorted(user_ids, np.array(u))
    i = np.array(i)
    ip = np.searchsorted(item_ids, i)
    ok = (ip < len(item_ids)) & (u < len(user_ids))
    ok[ok] = item_ids[ip[ok]] == i[ok]
    m = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (u[ok], ip[ok])),
                      shape=(len(user_ids), len(item_ids)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def measure_sqlite_vec(name, X, Y, user_pos, item_pos, users, items):
    """sqlite-vec vec0 brute-force KNN (k = 10) in an in-memory database (its best case).
    Inner product by the extra-coordinate transform: items get a 65th coordinate
    sqrt(M^2 - |y|^2) (M = largest item norm), the query a 0, so that L2 distance order
    equals dot-product order. similar_items: a second vec0 column with distance_metric=cosine."""
    import sqlite_vec
    res = {}
    con = sqlite3.connect(":memory:", isolation_level=None)
    con.enable_load_extension(True)
    sqlite_vec.load(con)
    res["sqlite_vec_version"] = con.execute("SELECT vec_version()").fetchone()[0]
    d = Y.shape[1]
    norms2 = np.einsum("ij,ij->i", Y, Y).astype(np.float64)
    extra = np.sqrt(np.maximum(norms2.max() - norms2, 0.0)).astype(np.float32)
    Yt = np.ascontiguousarray(np.concatenate([Y, extra[:, None]], axis=1), dtype=np.float32)
    ids = np.array(sorted(item_pos, key=item_pos.get), dtype=np.int64)
    con.execute(f"CREATE VIRTUAL TABLE vmips USING vec0(embedding float[{d + 1}])")
    con.execute(f"CREATE VIRTUAL TABLE vcos USING vec0(embedding float[{d}] distance_metric=cosine)")
    t = time.perf_counter()
    con.execute("BEGIN")
    con.executemany("INSERT INTO vmips(rowid, embedding) VALUES (?, ?)",
                    ((int(ids[p]), Yt[p].tobytes()) for p in range(len(ids))))
    con.executemany("INSERT INTO vcos(rowid, embedding) VALUES (?, ?)",
                    ((int(ids[p]), np.ascontiguousarray(Y[p]).tobytes()) for p in range(len(ids))))
    con.execute("COMMIT")
    res["vec_build_seconds"] = time.perf_counter() - t
    qs = [np.concatenate([X[user_pos[u]], [0.0]]).astype(np.float32).tobytes() for u in users]
    qi = [np.ascontiguousarray(Y[item_pos[i]]).tobytes() for i in items]
    mips = "SELECT rowid, distance FROM vmips WHERE embedding MATCH ? AND k = 10"
    cos = "SELECT rowid, distance FROM vcos WHERE embedding MATCH ? AND k = 11"  # the item itself is the 11th
    res["vec_knn_mips"] = latency(lambda q: con.execute(mips, (q,)).fetchall(), qs)
    log(f"{name}: sqlite-vec KNN (inner product via L2) p50 {res['vec_knn_mips']['p50_ms']:.3f} ms")
    res["vec_knn_cosine"] = latency(lambda q: con.execute(cos, (q,)).fetchall(), qi)
    # the transform is exact: compare with numpy top-10 by dot product (nothing excluded)
    agree = []
    for u, q in list(zip(users, qs))[:30]:
        got = [r[0] for r in con.execute(mips, (q,))]
        top = ids[np.argsort(-(Y @ X[user_pos[u]]), kind="stable")[:10]].tolist()
        agree.append(len(set(got) & set(top)) / 10)
    res["vec_mips_agrees_with_numpy"] = float(np.mean(agree))
    con.close()
    return res


def measure_empty_catalogue(rng):
    """Per-call overhead: recommend(u, 10) on a foryou table without events (a file
    database, as the other models), beside a `SELECT ?` round trip."""
    path = os.path.join(OUT, "empty.db")
    remove_db(path)
    con = connect(path)
    con.execute("CREATE VIRTUAL TABLE feed USING foryou()")
    users = rng.integers(0, 1000, 4096).tolist()
    out = {"recommend": latency(lambda u: con.execute("SELECT item_id, score FROM recommend(?, 10)", (u,)).fetchall(), users),
           "select": latency(lambda u: con.execute("SELECT ?", (u,)).fetchall(), users)}
    con.close()
    remove_db(path)
    log(f"empty catalogue: recommend p50 {out['recommend']['p50_ms'] * 1e3:.1f} us, SELECT ? {out['select']['p50_ms'] * 1e3:.1f} us")
    return out


def measure_filters(name, db, X, Y, item_ids, user_pos, users, rng):
    """recommend(u, 10) restricted to an allow-list, through SQL, as an app writes it: 100
    candidate ids bound as a JSON array (re-ranking another stage's candidates), and 10% /
    90% of the catalogue by a column of the app's own table (`videos.bucket`, indexed).
    sqlite-vec on the same vectors: the same filters inside its KNN, as a vec0 metadata
    column (`bucket = 3`, `bucket != 3`) and `rowid IN (...)`. Also: what SQLite alone takes
    to build each IN list (the part of the filtered call that is not foryou's)."""
    import sqlite_vec
    n = len(item_ids)
    bucket = (np.arange(n, dtype=np.int64) * 7919) % 10
    con = connect(db)
    con.execute("DROP TABLE IF EXISTS videos")
    con.execute("CREATE TABLE videos(item_id INTEGER PRIMARY KEY, bucket INTEGER)")
    con.execute("BEGIN")
    con.executemany("INSERT INTO videos VALUES (?, ?)", zip(item_ids.tolist(), bucket.tolist()))
    con.execute("COMMIT")
    con.execute("CREATE INDEX videos_bucket ON videos(bucket)")
    lists = [json.dumps(rng.choice(item_ids, 100, replace=False).tolist()) for _ in range(256)]
    filters = {
        "list-100": "SELECT value FROM json_each(?)",
        "share-10": "SELECT item_id FROM videos WHERE bucket = 3",
        "share-90": "SELECT item_id FROM videos WHERE bucket != 3",
    }
    vec_filters = {"list-100": "rowid IN (SELECT value FROM json_each(?))", "share-10": "bucket = 3",
                   "share-90": "bucket != 3"}
    # SQLite alone building the IN list (the ephemeral index it hands to the scan), probed once.
    filters = {f: (f"item_id IN ({q})", vec_filters[f], f"SELECT count(*) FROM (SELECT 1) WHERE -1 IN ({q})")
               for f, q in filters.items()}
    args = [(u, lists[j % len(lists)]) for j, u in enumerate(users)]

    def params(name, a):
        return a if name == "list-100" else a[:1]

    out = {"items": n}
    unfiltered = latency(lambda u: con.execute("SELECT item_id, score FROM recommend(?, 10)", (u,)).fetchall(), users)
    out["foryou_unfiltered"] = unfiltered
    item_pos = {int(i): p for p, i in enumerate(item_ids.tolist())}
    for fname, (fy, _, delivery) in filters.items():
        sql = f"SELECT item_id, score FROM recommend(?, 10) WHERE {fy}"
        r = {"foryou": latency(lambda a: con.execute(sql, params(fname, a)).fetchall(), args)}
        r["list_delivery"] = latency(lambda a: con.execute(delivery, params(fname, a)[1:]).fetchall(), args)
        # correctness: 10 rows, the numpy top 10 of the allowed, unwatched items
        agree, full = [], []
        for u, lst in args[:20]:
            got = [x[0] for x in con.execute(sql, params(fname, (u, lst)))]
            if fname == "list-100":
                keep = np.isin(item_ids, np.array(json.loads(lst), dtype=np.int64))
            else:
                keep = (bucket == 3) == (fname == "share-10")
            watched = [x[0] for x in con.execute("SELECT item_id FROM feed WHERE user_id = ?", (u,))]
            keep = keep & ~np.isin(item_ids, np.array(watched, dtype=np.int64))
            s = Y @ X[user_pos[u]]
            s[~keep] = -np.inf
            top = item_ids[np.argsort(-s, kind="stable")[:10]].tolist()
            agree.append(len(set(got) & set(top)) / 10)
            full.append(len(got) == min(10, int(keep.sum())))
        r["foryou_agrees_with_numpy"] = float(np.mean(agree))
        r["foryou_returns_k"] = float(np.mean(full))
        out[fname] = r
        log(f"{name}: foryou recommend {fname} p50 {r['foryou']['p50_ms']:.3f} ms "
            f"(list delivery {r['list_delivery']['p50_ms']:.3f} ms, unfiltered {unfiltered['p50_ms']:.3f} ms)")
    con.close()

    vcon = sqlite3.connect(":memory:", isolation_level=None)
    vcon.enable_load_extension(True)
    sqlite_vec.load(vcon)
    d = Y.shape[1]
    norms2 = np.einsum("ij,ij->i", Y, Y).astype(np.float64)
    extra = np.sqrt(np.maximum(norms2.max() - norms2, 0.0)).astype(np.float32)
    Yt = np.ascontiguousarray(np.concatenate([Y, extra[:, None]], axis=1), dtype=np.float32)
    vcon.execute(f"CREATE VIRTUAL TABLE vfilt USING vec0(embedding float[{d + 1}], bucket integer)")
    vcon.execute("BEGIN")
    vcon.executemany("INSERT INTO vfilt(rowid, embedding, bucket) VALUES (?, ?, ?)",
                     ((int(item_ids[p]), Yt[p].tobytes(), int(bucket[p])) for p in range(n)))
    vcon.execute("COMMIT")
    qargs = [(np.concatenate([X[user_pos[u]], [0.0]]).astype(np.float32).tobytes(), lst) for u, lst in args]
    for fname, (_, vf, _) in filters.items():
        sql = f"SELECT rowid, distance FROM vfilt WHERE embedding MATCH ? AND k = 10 AND {vf}"
        out[fname]["sqlite_vec"] = latency(lambda a: vcon.execute(sql, params(fname, a)).fetchall(), qargs)
        out[fname]["ratio_vec"] = out[fname]["foryou"]["p50_ms"] / out[fname]["sqlite_vec"]["p50_ms"]
        log(f"{name}: sqlite-vec KNN {fname} p50 {out[fname]['sqlite_vec']['p50_ms']:.3f} ms")
    vcon.close()
    return out


# ---------------------------------------------------------------------------------------
# fold-in
# ---------------------------------------------------------------------------------------

def measure_foldin(name, db, rng):
    """recommend(u, 10) for a user with FOLDIN_EVENTS events newer than the last refit:
    the first call folds in, the second hits the per-connection cache. Modifies `db`."""
    con = connect(db)
    user_ids, _ = read_factors(con, "feed_users")
    item_ids, _ = read_factors(con, "feed_items")
    newest = con.execute("SELECT max(ts) FROM feed_events").fetchone()[0] or gen.T0  # shadow table: see scan_diagnostic
    rec = "SELECT item_id, score FROM recommend(?, 10)"
    con.execute(rec, (int(user_ids[0]),)).fetchall()  # load the model
    res = {"events_per_user": FOLDIN_EVENTS, "users": FOLDIN_USERS}
    for kind in ("existing_user", "new_user"):
        first, second = [], []
        chosen = rng.choice(user_ids, FOLDIN_USERS, replace=False).tolist() if kind == "existing_user" else \
            [int(user_ids.max()) + 1 + j for j in range(FOLDIN_USERS)]
        for u in chosen:
            its = rng.choice(item_ids, FOLDIN_EVENTS).tolist()
            ratio = np.where(rng.random(FOLDIN_EVENTS) < 0.5, rng.uniform(0.7, 2.0, FOLDIN_EVENTS),
                             rng.uniform(0.02, 0.3, FOLDIN_EVENTS))
            rows = [(u, i, float(round(20.0 * r, 2)), 20.0, int(newest + 1 + j))
                    for j, (i, r) in enumerate(zip(its, ratio))]
            con.execute("BEGIN")
            con.executemany(f"INSERT INTO feed({COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")
            t = time.perf_counter()
            a = con.execute(rec, (u,)).fetchall()
            first.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            b = con.execute(rec, (u,)).fetchall()
            second.append((time.perf_counter() - t) * 1e3)
            assert a == b and len(a) == 10, (kind, u, a, b)
        res[kind] = {"first_call_ms": median(first), "second_call_ms": median(second),
                     "first_runs_ms": [round(x, 3) for x in first]}
    con.close()
    log(f"{name}: fold-in first call {res['existing_user']['first_call_ms']:.2f} ms, "
        f"cached {res['existing_user']['second_call_ms']:.3f} ms")
    return res


# ---------------------------------------------------------------------------------------
# catalogue sweep
# ---------------------------------------------------------------------------------------

def build_table(data, workdir):
    """The catalogue sweep's model: its events ingested (not timed) and one full refit."""
    staging = os.path.join(workdir, "staging.db")
    write_staging(data, staging)
    db = os.path.join(workdir, "feed.db")
    s, _ = ingest_once("foryou", db, staging, data.n_train)
    os.remove(staging)
    r = foryou_refit(db, {"mode": "full"})
    log(f"{data.name}: {data.n_train} events ingested in {s:.1f} s; refit {r['seconds']:.1f} s "
        f"({r['report']['items']} items)")
    return db, {"ingest_seconds": s, "refit_seconds": r["seconds"], "refit_peak_rss_mib": r["peak_rss_kb"] / 1024,
                "report": r["report"]}


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------

def fmt(x, digits=3):
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)):
        return f"{x:,}"
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:.{digits}f}".rstrip("0").rstrip(".")


def targets(results):
    """Issue 5's targets, judged on the largest shape this run measured."""
    out = []
    ds = results["datasets"]
    main = "ml20m" if "ml20m" in ds else "small"
    proxy = "" if main == "ml20m" else " [QUICK: small shape stands in for ml20m]"
    m = ds[main]
    r = m["refit"]
    out.append({"target": f"refit end to end <= 0.67x implicit fit() at {main}{proxy}",
                "value": r["ratio_time"], "limit": 0.67, "holds": r["ratio_time"] <= 0.67,
                "detail": f"foryou {r['foryou']['seconds']:.2f} s vs implicit {r['implicit']['seconds']:.2f} s"})
    q = m["quality"]
    same = q["foryou"]["ndcg"] >= 0.99 * q["implicit"]["ndcg"]
    out.append({"target": f"NDCG@10 same or better than implicit at {main} (within 1% relative){proxy}",
                "value": q["ratio_ndcg"], "limit": 0.99, "holds": bool(same),
                "detail": f"foryou {q['foryou']['ndcg']:.4f} vs implicit {q['implicit']['ndcg']:.4f}"})
    sv = m["serving"]
    where = f"{sv['items']:,} items ({main})" + ("" if main == "ml20m" else " [QUICK: stands in for ml20m's 27k items]")
    out.append({"target": f"recommend p50 <= 0.67x implicit single-user recommend at {where}",
                "value": sv["ratio_recommend_implicit"], "limit": 0.67, "holds": sv["ratio_recommend_implicit"] <= 0.67,
                "detail": f"foryou {sv['foryou_recommend']['p50_ms']:.3f} ms vs implicit "
                          f"{sv['implicit_recommend']['p50_ms']:.3f} ms"})
    out.append({"target": f"similar_items p50 <= implicit at {where}",
                "value": sv["ratio_similar_implicit"], "limit": 1.0, "holds": sv["ratio_similar_implicit"] <= 1.0,
                "detail": f"foryou {sv['foryou_similar']['p50_ms']:.3f} ms vs implicit "
                          f"{sv['implicit_similar']['p50_ms']:.3f} ms"})
    cat = results["catalogue"]
    if cat:
        big = cat[-1]
        proxy_c = "" if big["items"] >= 1_000_000 else f" [QUICK: {big['items']:,} items stands in for 1M]"
        speedup = big["vec_knn_mips"]["p50_ms"] / big["foryou_recommend"]["p50_ms"]
        out.append({"target": f"recommend >= 5x faster than sqlite-vec KNN at {big['items']:,} items{proxy_c}",
                    "value": speedup, "limit": 5.0, "holds": speedup >= 5.0,
                    "detail": f"foryou {big['foryou_recommend']['p50_ms']:.3f} ms vs sqlite-vec "
                              f"{big['vec_knn_mips']['p50_ms']:.3f} ms (speed-up shown as value)"})
    ing = ds[main]["ingest"]
    out.append({"target": f"ingest through the virtual table >= 0.5x plain-table rate ({main})",
                "value": ing["ratio_foryou_plain"], "limit": 0.5, "holds": ing["ratio_foryou_plain"] >= 0.5,
                "detail": f"foryou {ing['foryou']['events_per_s']:,.0f} ev/s vs plain "
                          f"{ing['plain']['events_per_s']:,.0f} ev/s"})
    out.append({"target": f"refit peak RSS < implicit's ({main})",
                "value": r["ratio_peak_rss"], "limit": 1.0, "holds": r["ratio_peak_rss"] < 1.0,
                "detail": f"foryou {r['foryou']['peak_rss_mib']:.0f} MiB vs implicit "
                          f"{r['implicit']['peak_rss_mib']:.0f} MiB (process peaks; increments over the "
                          f"pre-fit baseline: {r['foryou']['peak_rss_mib'] - r['foryou']['rss_before_mib']:.0f} vs "
                          f"{r['implicit']['peak_rss_mib'] - r['implicit']['rss_before_mib']:.0f} MiB)"})
    sw = results["refit_sweep"]
    if len(sw) >= 2:
        a, b = sw[0], sw[-1]
        growth = (b["foryou_seconds"] / a["foryou_seconds"]) / (b["events"] / a["events"])
        out.append({"target": "refit cost linear in events (time per event, largest / smallest sweep size <= 1.25)",
                    "value": growth, "limit": 1.25, "holds": growth <= 1.25,
                    "detail": f"{a['events']:,} -> {b['events']:,} events: {a['foryou_seconds']:.2f} -> "
                              f"{b['foryou_seconds']:.2f} s"})
    if len(cat) >= 2:
        a, b = cat[0], cat[-1]
        exp = math.log(b["foryou_recommend"]["p50_ms"] / a["foryou_recommend"]["p50_ms"]) / math.log(b["items"] / a["items"])
        out.append({"target": "serving cost at most linear in items (log-log slope of recommend p50 <= 1.1)",
                    "value": exp, "limit": 1.1, "holds": exp <= 1.1,
                    "detail": f"{a['items']:,} -> {b['items']:,} items: {a['foryou_recommend']['p50_ms']:.3f} -> "
                              f"{b['foryou_recommend']['p50_ms']:.3f} ms"})
    # Issue 13: a filter costs no more than the unfiltered scan (a short list much less).
    filtered = [(n, d["serving"]) for n, d in ds.items() if "filters" in d["serving"]] + \
        [(c["name"], c) for c in cat if "filters" in c]
    for n, s in filtered:
        f = s["filters"]
        base = f["foryou_unfiltered"]["p50_ms"]
        for key, label in (("list-100", "100 listed ids"), ("share-10", "10% of the items"),
                           ("share-90", "90% of the items")):
            ratio = f[key]["foryou"]["p50_ms"] / base
            out.append({"target": f"recommend with an allow-list of {label} <= the unfiltered call at {f['items']:,} items ({n})",
                        "value": ratio, "limit": 1.0, "holds": ratio <= 1.0,
                        "detail": f"{f[key]['foryou']['p50_ms']:.3f} ms vs {base:.3f} ms unfiltered; SQLite builds "
                                  f"the IN list in {f[key]['list_delivery']['p50_ms']:.3f} ms; sqlite-vec "
                                  f"{f[key]['sqlite_vec']['p50_ms']:.3f} ms"})
    for t in out:
        t["holds"] = bool(t["holds"])
    return out


def targets_table(results):
    """The issue-5 targets as Markdown table lines (results.md and bench/README.md)."""
    L = ["| target | value | limit | holds | detail |", "|---|---|---|---|---|"]
    for t in results["targets"]:
        L.append(f"| {t['target']} | {fmt(t['value'])} | {t['limit']} | {'yes' if t['holds'] else '**no**'} | {t['detail']} |")
    return L


def markdown(results):
    L = []
    m, v = results["machine"], results["versions"]
    L.append(f"# foryou benchmark{' (QUICK)' if results['quick'] else ''}")
    L.append("")
    L.append(f"- date: {results['date']}; command: `{results['command']}`; runtime {results['runtime_seconds'] / 60:.1f} min")
    L.append(f"- machine: {m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}")
    L.append(f"- versions: foryou {v['foryou']} ({v['git']}), SQLite {m['sqlite']}, Python {m['python']}, "
             f"implicit {v['implicit']}, numpy {v['numpy']}, scipy {v['scipy']}, sqlite-vec {v['sqlite_vec']}")
    L.append(f"- foryou SIMD: {v['simd']}")
    busy = results["busy"]
    L.append(f"- machine load: CPU busy {busy['busy_share_before']:.0%} before the run, "
             f"{busy['busy_share_after']:.0%} after; load average {busy['loadavg_before']} -> {busy['loadavg_after']}"
             + ("; **other processes were using the CPU: figures are provisional**" if busy["provisional"] else ""))
    if busy["other_processes"]:
        L.append("- other processes at start: " + "; ".join(f"{p['cmd']} ({p['cpu']:.0%})" for p in busy["other_processes"][:3]))
    if busy["busy_sections"]:
        L.append("- other processes were using the CPU as these sections started: " + ", ".join(busy["busy_sections"]))
    L.append("- share of the machine's CPU used by other processes, per section: " +
             ", ".join(f"{n} {v:.0%}" for n, v in busy["other_load_by_section"].items()))
    s = results["settings"]
    L.append(f"- settings: {s['factors']} factors, {s['iterations']} iterations, {s['threads']} threads, "
             f"regularization {s['regularization']} (unscaled on both sides: foryou `regularization_scaling = none`), foryou `confidence = ratio, alpha = {s['alpha']}` = implicit "
             f"`alpha = {s['alpha']}` on the summed watch ratio; implicit CG solver, OpenBLAS 1 thread")
    L.append("")
    L.append("## Targets (issue 5)")
    L.append("")
    L.extend(targets_table(results))
    L.append("")
    L.append("## Per dataset")
    L.append("")
    L.append("| dataset | train events | users | items | ingest foryou ev/s | plain ev/s | ratio | "
             "refit foryou s | implicit fit s | ratio | per iter foryou / implicit s | "
             "NDCG@10 foryou / implicit | peak RSS foryou / implicit MiB | DB bytes/event foryou / plain |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, d in results["datasets"].items():
        sh, ing, rf, q = d["shape"], d["ingest"], d["refit"], d["quality"]
        L.append(f"| {name} | {sh['train_events']:,} | {sh['users']:,} | {sh['items']:,} | "
                 f"{ing['foryou']['events_per_s']:,.0f} | {ing['plain']['events_per_s']:,.0f} | {ing['ratio_foryou_plain']:.3f} | "
                 f"{rf['foryou']['seconds']:.2f} | {rf['implicit']['seconds']:.2f} | {rf['ratio_time']:.2f} | "
                 f"{rf['foryou']['per_iteration']:.3f} / {rf['implicit']['per_iteration']:.3f} | "
                 f"{q['foryou']['ndcg']:.4f} / {q['implicit']['ndcg']:.4f} | "
                 f"{rf['foryou']['peak_rss_mib']:.0f} / {rf['implicit']['peak_rss_mib']:.0f} | "
                 f"{d['bytes_per_event']['foryou_after_refit']:.1f} / {ing['plain']['bytes_per_event']:.1f} |")
    L.append("")
    L.append("foryou refit split (one 1-iteration refit): fixed cost (read events, build, write factors) and per sweep:")
    L.append("")
    for name, d in results["datasets"].items():
        f = d["refit"]["foryou"]
        extra = ""
        if "plain+index" in d["ingest"]:
            extra = f"; plain table with an index on (user_id, item_id): {d['ingest']['plain+index']['events_per_s']:,.0f} ev/s"
        scan = d["ingest"].get("vtab_scan") or {}
        if scan:
            extra += "; reading events back through the table: " + ", ".join(
                f"{k.split('_')[1]} rows {v:.2f} µs/row" for k, v in scan.items())
        L.append(f"- {name}: fixed ≈ {f['fixed_cost_estimate']:.2f} s, sweep ≈ {f['per_sweep_estimate']:.3f} s "
                 f"(implicit {d['refit']['implicit']['per_iteration']:.3f} s per iteration incl. its setup); "
                 f"RSS before the refit {f['rss_before_mib']:.0f} MiB, implicit before fit "
                 f"{d['refit']['implicit']['rss_before_mib']:.0f} MiB{extra}")
    L.append("")
    L.append("## Serving (p50 / p99 ms, through SQL for foryou and sqlite-vec, single Python call for implicit)")
    L.append("")
    L.append("| model | items | foryou recommend | implicit recommend | ratio | foryou similar_items | implicit similar_items | ratio | "
             "sqlite-vec KNN (IP via L2) | foryou / vec | sqlite-vec cosine k=11 | first call ms |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [(n, d["serving"]) for n, d in results["datasets"].items()] + [(c["name"], c) for c in results["catalogue"]]
    for n, s in rows:
        L.append(f"| {n} | {s['items']:,} | {s['foryou_recommend']['p50_ms']:.3f} / {s['foryou_recommend']['p99_ms']:.3f} | "
                 f"{s['implicit_recommend']['p50_ms']:.3f} / {s['implicit_recommend']['p99_ms']:.3f} | "
                 f"{s['ratio_recommend_implicit']:.2f} | "
                 f"{s['foryou_similar']['p50_ms']:.3f} / {s['foryou_similar']['p99_ms']:.3f} | "
                 f"{s['implicit_similar']['p50_ms']:.3f} / {s['implicit_similar']['p99_ms']:.3f} | "
                 f"{s['ratio_similar_implicit']:.2f} | "
                 f"{s['vec_knn_mips']['p50_ms']:.3f} / {s['vec_knn_mips']['p99_ms']:.3f} | {s['ratio_recommend_vec']:.3f} | "
                 f"{s['vec_knn_cosine']['p50_ms']:.3f} / {s['vec_knn_cosine']['p99_ms']:.3f} | "
                 f"{s['foryou_first_call_ms']:.1f} |")
    L.append("")
    any_s = rows[0][1]
    L.append(f"Python + sqlite3 cost of one `SELECT ?` round trip: {any_s['python_sqlite_overhead_ms'] * 1000:.1f} µs "
             f"(included in every SQL figure). `recommend(?, 10, 'feed')` (model named): " +
             ", ".join(f"{n} {s['foryou_recommend_model_arg']['p50_ms']:.3f} ms" for n, s in rows) + ".")
    L.append("foryou recommend p50 by history length (watched pairs): " +
             ", ".join(f"{n} lighter half (median {s['foryou_recommend_light_users']['median_watched_pairs']:,.0f} pairs) "
                       f"{s['foryou_recommend_light_users']['p50_ms']:.3f} ms vs heaviest 10% (median "
                       f"{s['foryou_recommend_heavy_users']['median_watched_pairs']:,.0f}) "
                       f"{s['foryou_recommend_heavy_users']['p50_ms']:.3f} ms" for n, s in rows
                       if "foryou_recommend_heavy_users" in s) + ".")
    L.append("Checks: foryou's recommend top-10 vs numpy on its stored factors (watched excluded): " +
             ", ".join(f"{n} {s['foryou_recommend_agrees_with_numpy']:.0%}" for n, s in rows) +
             "; sqlite-vec transform vs numpy dot-product top-10: " +
             ", ".join(f"{n} {s['vec_mips_agrees_with_numpy']:.0%}" for n, s in rows) + ".")
    L.append("sqlite-vec has no inner-product metric: items get the extra coordinate sqrt(M² − |y|²), the query 0, "
             "so L2 order = dot-product order (exact); it does not leave out watched items, foryou and implicit do. "
             "implicit similar_items(N=10) includes the item itself; foryou's leaves it out.")
    L.append("")
    if "empty_catalogue" in results:
        e = results["empty_catalogue"]
        L.append(f"Per-call overhead, `recommend(?, 10)` on a foryou table with no events (file database): "
                 f"{e['recommend']['p50_ms'] * 1e3:.1f} µs p50, against {e['select']['p50_ms'] * 1e3:.1f} µs for a "
                 "`SELECT ?` round trip.")
        L.append("")
    filtered = [(n, d["serving"]) for n, d in results["datasets"].items() if "filters" in d["serving"]] + \
        [(c["name"], c) for c in results["catalogue"] if "filters" in c]
    if filtered:
        L.append("## Filtered serving (recommend(u, 10) with an allow-list; p50 ms through SQL)")
        L.append("")
        L.append("| model | items | filter | foryou | sqlite-vec (same filter inside its KNN) | foryou / vec | "
                 "SQLite building the IN list alone | foryou unfiltered | returns k / agrees with numpy |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        labels = {"list-100": "100 ids (JSON array)", "share-10": "10% (bucket = 3)", "share-90": "90% (bucket != 3)"}
        for n, s in filtered:
            f = s["filters"]
            for key, label in labels.items():
                r = f[key]
                L.append(f"| {n} | {f['items']:,} | {label} | {fmt(r['foryou']['p50_ms'])} | "
                         f"{fmt(r['sqlite_vec']['p50_ms'])} | {r['ratio_vec']:.3f} | {fmt(r['list_delivery']['p50_ms'])} | "
                         f"{fmt(f['foryou_unfiltered']['p50_ms'])} | {r['foryou_returns_k']:.0%} / {r['foryou_agrees_with_numpy']:.0%} |")
        L.append("")
        L.append("foryou: `WHERE item_id IN (SELECT value FROM json_each(?))` and `WHERE item_id IN (SELECT item_id FROM "
                 "videos WHERE bucket = 3)` (an app table with an index on bucket); watched items left out. sqlite-vec: "
                 "a vec0 table with a metadata column `bucket integer`, `AND bucket = 3` / `AND bucket != 3`, and "
                 "`AND rowid IN (SELECT value FROM json_each(?))`; watched items not left out.")
        L.append("")
    L.append("## Fold-in (recommend(u, 10) after 100 new events for u, no refit)")
    L.append("")
    L.append("| dataset | up-to-date user p50 ms | existing user: first call (fold-in) | second call (cached) | new user: first | second |")
    L.append("|---|---|---|---|---|---|")
    for n, d in results["datasets"].items():
        f = d["foldin"]
        L.append(f"| {n} | {d['serving']['foryou_recommend']['p50_ms']:.3f} | {f['existing_user']['first_call_ms']:.3f} | "
                 f"{f['existing_user']['second_call_ms']:.3f} | {f['new_user']['first_call_ms']:.3f} | "
                 f"{f['new_user']['second_call_ms']:.3f} |")
    L.append("")
    L.append("## Refit sweep (median seconds)")
    L.append("")
    L.append("| shape | events | users | items | pairs | foryou s | implicit s | ratio | foryou µs/event | implicit µs/event |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for s in results["refit_sweep"]:
        L.append(f"| {s['name']} | {s['events']:,} | {s['users']:,} | {s['items']:,} | {s['pairs']:,} | {s['foryou_seconds']:.2f} | "
                 f"{s['implicit_seconds']:.2f} | {s['foryou_seconds'] / s['implicit_seconds']:.2f} | "
                 f"{s['foryou_seconds'] / s['events'] * 1e6:.2f} | {s['implicit_seconds'] / s['events'] * 1e6:.2f} |")
    L.append("")
    L.append("Catalogue models (events with one extra event per item, so every item has factors): " +
             "; ".join(f"{c['name']}: {c['build']['report']['events']:,} events, {c['build']['report']['users']:,} users, "
                       f"{c['items']:,} items, refit {c['build']['refit_seconds']:.1f} s, sqlite-vec build "
                       f"{c['vec_build_seconds']:.1f} s" for c in results["catalogue"]) + ".")
    L.append("")
    return "\n".join(L) + "\n"


def summary(results):
    """The block bench/README.md shows for the latest run of this variant."""
    m, v, busy = results["machine"], results["versions"], results["busy"]
    L = [f"`{results['command']}`, {results['date']}, {m['cpu']} ({m['nproc']} cores, {v['simd']}), "
         f"{m['memory_gib']} GiB, SQLite {m['sqlite']}, implicit {v['implicit']}, sqlite-vec {v['sqlite_vec']}, "
         f"foryou {v['foryou']} at {v['git']}; {results['runtime_seconds'] / 60:.1f} min."]
    if busy["provisional"]:
        names = sorted({p["cmd"].split()[-1] if p["cmd"] else "?" for x in busy["samples"] for p in x["other_processes"]}
                       | {p["cmd"].split()[-1] for p in busy["other_processes"] if p["cmd"]})
        who = f"other processes ({', '.join(names)})" if names else "other load"
        L.append(f"**Provisional: {who} used the CPU during the run** (share of the CPU they used, per section: " +
                 ", ".join(f"{n} {v:.0%}" for n, v in busy["other_load_by_section"].items()) +
                 "); ratios (foryou and its anchor measured alternately) are more trustworthy than absolute "
                 "times, p99s least of all.")
    L.append("")
    L.extend(targets_table(results))
    L.append("")
    md = markdown(results)
    for title in ("## Per dataset", "## Serving", "## Fold-in", "## Refit sweep"):
        start = md.index(title)
        table = md[start:].split("\n\n")[1]
        L.append(f"**{title[3:].split(' (')[0]}**")
        L.append("")
        L.append(table)
        L.append("")
    return "\n".join(L)


def update_readme(results):
    """Replaces the block between the markers of this variant in bench/README.md."""
    path = os.path.join(HERE, "README.md")
    tag = "quick" if results["quick"] else "full"
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return
    if begin not in text or end not in text:
        return
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w") as f:
        f.write(head + begin + "\n" + summary(results) + "\n" + end + tail)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6))
    sw = results["refit_sweep"]
    ev = [s["events"] for s in sw]
    a.plot(ev, [s["foryou_seconds"] for s in sw], "o-", label="foryou_refit (end to end)")
    a.plot(ev, [s["implicit_seconds"] for s in sw], "s--", label="implicit fit() (CG)")
    f0 = sw[0]["foryou_seconds"] / sw[0]["events"]
    a.plot(ev, [f0 * e for e in ev], color="grey", lw=0.8, ls=":", label="linear in events (from first foryou point)")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("training events")
    a.set_ylabel("seconds (15 iterations, 64 factors, 2 threads)")
    a.set_title("Refit time vs events")
    a.grid(True, which="both", alpha=0.3)
    a.legend()
    pts = sorted([(d["serving"]["items"], d["serving"]) for d in results["datasets"].values()] +
                 [(c["items"], c) for c in results["catalogue"]], key=lambda p: p[0])
    n = [p[0] for p in pts]
    for key, label, style in [("foryou_recommend", "foryou recommend (SQL)", "o-"),
                              ("foryou_similar", "foryou similar_items (SQL)", "o:"),
                              ("implicit_recommend", "implicit recommend", "s--"),
                              ("implicit_similar", "implicit similar_items", "s:"),
                              ("vec_knn_mips", "sqlite-vec KNN k=10 (IP via L2)", "^-.")]:
        b.plot(n, [p[1][key]["p50_ms"] for p in pts], style, label=label)
    for items, p in pts:  # which model each point is (trained shapes have longer user histories)
        label = p.get("name") or next((k for k, d in results["datasets"].items() if d["serving"] is p), "")
        b.annotate(label, (items, p["foryou_recommend"]["p50_ms"]), textcoords="offset points", xytext=(4, 5),
                   fontsize=7, color="C0")
    r0 = pts[-1][1]["foryou_recommend"]["p50_ms"] / pts[-1][0]
    b.plot(n, [r0 * x for x in n], color="grey", lw=0.8, ls=":", label="linear in items (through largest foryou point)")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("catalogue items")
    b.set_ylabel("p50 latency, ms")
    b.set_title("Serving latency vs catalogue size")
    b.grid(True, which="both", alpha=0.3)
    b.legend(fontsize=8)
    fig.suptitle(f"foryou benchmark{' (QUICK)' if results['quick'] else ''}: {results['machine']['cpu']}, "
                 f"{results['machine']['nproc']} cores, {results['date'][:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------

def main():
    import implicit
    import sqlite_vec

    os.makedirs(OUT, exist_ok=True)
    busy_before = cpu_busy_share()
    others = other_processes()
    load_before = [round(x, 2) for x in os.getloadavg()]
    con = connect(":memory:")
    versions = {"foryou": con.execute("SELECT foryou_version()").fetchone()[0], "git": git_commit(),
                "implicit": implicit.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                "sqlite_vec": getattr(sqlite_vec, "__version__", None) or "?"}
    debug = con.execute("SELECT foryou_debug()").fetchone()[0]
    versions["simd"] = next((line.split(":", 1)[1].strip() for line in debug.splitlines() if line.startswith("simd")), "?")
    con.close()
    command = "QUICK=1 bash bench/run.sh (make bench-quick)" if QUICK else "bash bench/run.sh (make bench)"
    log(f"foryou benchmark, {'QUICK' if QUICK else 'full'}; CPU busy before start {busy_before:.0%}"
        + (f"; other processes: {', '.join(p['cmd'][:40] for p in others[:3])}" if others else ""))
    rng = np.random.Generator(np.random.PCG64(SEED + 99))
    results = {"quick": QUICK, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": command, "machine": machine_info(), "versions": versions,
               "settings": {"factors": FACTORS, "iterations": ITERATIONS, "threads": THREADS,
                            "regularization": REGULARIZATION, "alpha": ALPHA, "seed": SEED, "k": K,
                            "foryou_create": FORYOU_CREATE, "sqlite_pragmas": "defaults (rollback journal, "
                            "synchronous FULL, 2 MB page cache), one transaction per bulk INSERT"},
               "datasets": {}, "refit_sweep": [], "catalogue": []}

    results["empty_catalogue"] = measure_empty_catalogue(rng)
    sweep_done = {}
    for name in DATASETS:
        sample_load(name)
        load = OtherLoad().start()
        t = time.time()
        data = Data(name)
        log(f"{name}: {data.n_events} events generated/read ({time.time() - t:.1f} s); "
            f"{len(data.user_ids)} users, {len(data.item_ids)} items in training")
        work = os.path.join(OUT, name)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        d = {"shape": data.shape()}
        d["ingest"] = measure_ingest(data, work, INGEST_REPS[name], with_index=(name != "ml20m"))
        db = os.path.join(work, "feed.db")
        d["refit"] = measure_refit(data, work, REFIT_REPS[name], db=db)
        c = connect(db)
        d["bytes_per_event"] = {"foryou_after_refit": db_bytes(c) / data.n_train,
                                "foryou_events_only": d["ingest"]["foryou"]["bytes_per_event"],
                                "plain": d["ingest"]["plain"]["bytes_per_event"]}
        c.close()
        d["quality"] = measure_quality(data, work, db)
        log(f"{name}: NDCG@10 foryou {d['quality']['foryou']['ndcg']:.4f}, implicit {d['quality']['implicit']['ndcg']:.4f}")
        d["serving"] = measure_serving(name, db, data, rng)
        d["foldin"] = measure_foldin(name, db, rng)
        d["other_load"] = load.stop()
        log(f"{name}: other processes used {d['other_load']:.0%} of the CPU during this section")
        results["datasets"][name] = d
        if name in REFIT_SWEEP:
            sweep_done[name] = {"name": name, "events": data.n_train, "users": len(data.user_ids),
                                "items": len(data.item_ids), "pairs": int(data.pairs),
                                "foryou_seconds": d["refit"]["foryou"]["seconds"],
                                "implicit_seconds": d["refit"]["implicit"]["seconds"],
                                "other_load": d["other_load"]}
        shutil.rmtree(work, ignore_errors=True)
        del data

    for name in REFIT_SWEEP:
        if name not in sweep_done:
            sample_load(name)
            load = OtherLoad().start()
            data = Data(name)
            work = os.path.join(OUT, name)
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            staging = os.path.join(work, "staging.db")
            write_staging(data, staging)
            db = os.path.join(work, "feed.db")
            ingest_once("foryou", db, staging, data.n_train)
            os.remove(staging)
            r = measure_refit(data, work, REFIT_REPS[name], db=db, keep_factors=False)
            sweep_done[name] = {"name": name, "events": data.n_train, "users": len(data.user_ids),
                                "items": len(data.item_ids), "pairs": int(data.pairs),
                                "foryou_seconds": r["foryou"]["seconds"],
                                "implicit_seconds": r["implicit"]["seconds"], "detail": r,
                                "other_load": load.stop()}
            shutil.rmtree(work, ignore_errors=True)
            del data
        results["refit_sweep"].append(sweep_done[name])
    results["refit_sweep"].sort(key=lambda s: s["events"])

    for name in CATALOGUE:
        sample_load(name)
        load = OtherLoad().start()
        data = Data(name)
        work = os.path.join(OUT, name)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        db, build = build_table(data, work)
        s = measure_serving(name, db, data, rng)
        s["name"] = name
        s["build"] = build
        s["other_load"] = load.stop()
        results["catalogue"].append(s)
        shutil.rmtree(work, ignore_errors=True)
        del data

    results["targets"] = targets(results)
    sample_load("end")
    busy_after = cpu_busy_share()
    results["busy"] = {"busy_share_before": busy_before, "busy_share_after": busy_after,
                       "loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                       "other_processes": others, "samples": LOAD_SAMPLES,
                       "busy_sections": [x["section"] for x in LOAD_SAMPLES if x["other_processes"]],
                       "other_load_by_section": {**{n: d["other_load"] for n, d in results["datasets"].items()},
                                                 **{s["name"]: s["other_load"] for s in results["refit_sweep"]},
                                                 **{c["name"]: c["other_load"] for c in results["catalogue"]}},
                       "provisional": bool(busy_before > 0.15 or busy_after > 0.15 or others or
                                           any(x["other_processes"] for x in LOAD_SAMPLES))}
    results["busy"]["provisional"] = results["busy"]["provisional"] or \
        any(v > 0.05 for v in results["busy"]["other_load_by_section"].values())
    results["runtime_seconds"] = time.time() - T_START
    with open(os.path.join(HERE, f"results{SUFFIX}.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
        f.write("\n")
    md = markdown(results)
    with open(os.path.join(HERE, f"results{SUFFIX}.md"), "w") as f:
        f.write(md)
    plot(results, os.path.join(HERE, f"plot{SUFFIX}.png"))
    update_readme(results)
    print(md)
    log(f"wrote bench/results{SUFFIX}.json, bench/results{SUFFIX}.md, bench/plot{SUFFIX}.png")


if __name__ == "__main__":
    main()
