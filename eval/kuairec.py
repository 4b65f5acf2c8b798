#!/usr/bin/env python3
"""Evaluation protocol of foryou on KuaiRec (watch ratio) and KuaiRec signed feedback.

Run through `make eval` (or `bash eval/run.sh`); `QUICK=1` runs a smoke variant with one
seed and a tiny grid. The protocol, the grids and the outputs are described in
eval/README.md. Data is read in place from ../shared/data (or $FORYOU_DATA); nothing is
copied into the repository.

Rows, per dataset, each tuned on a validation split by mean NDCG@10 over seeds, then
reported on the test split as mean ± sample standard deviation over seeds:
  popularity, foryou binary, foryou watch-time, foryou watch-time + skips, implicit ALS.
"""

import datetime
import json
import math
import os
import platform
import sqlite3
import sys
import time

import numpy as np
import scipy
import scipy.sparse as sp

import implicit
from implicit.cpu.als import AlternatingLeastSquares

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("FORYOU_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
EXT = os.environ.get("FORYOU_EXT") or os.path.join(ROOT, "target", "release", "libforyou")
QUICK = os.environ.get("QUICK", "0") not in ("", "0")
OUT_DIR = os.path.join(ROOT, "eval")

FACTORS, ITERATIONS, THREADS = 64, 15, 2
K_NDCG, K_PREC, K_RECALL = 10, 10, 20
KS = (10, 20)
RELEVANT_RATIO = 2.0  # KuaiRec: a held-out row is relevant when watch_ratio >= 2.0
TEST_SHARE, VALID_SHARE = 0.2, 0.1

if QUICK:
    SEEDS = [0]
    ALPHAS = [5.0, 20.0]
    REGS = [0.1, 10.0]
    # regularization_scaling: the λ grid of each scaling (λ per pair with count, per
    # √pair with sqrt: about 1/50 and 1/7 of the unscaled λ on these data).
    REGS_BY_SCALING = {"none": REGS, "count": [0.01, 0.2], "sqrt": [0.1, 2.0]}
    SKIP_RATIOS = [0.25]
    SKIP_WEIGHTS = [1.0, 5.0]
else:
    SEEDS = [0, 1, 2, 3, 4]
    ALPHAS = [1.0, 5.0, 10.0, 20.0, 40.0]
    REGS = [0.01, 0.1, 1.0, 10.0]
    REGS_BY_SCALING = {"none": REGS, "count": [0.001, 0.01, 0.1, 1.0], "sqrt": [0.01, 0.1, 1.0, 10.0]}
    SKIP_RATIOS = [0.1, 0.25, 0.5]
    SKIP_WEIGHTS = [0.5, 1.0, 2.0, 5.0, 10.0]
# After each grid, a hill climb over these ladders (one rung up or down per parameter
# per step, while the validation NDCG@10 improves), so that an optimum at the edge of
# the grid is followed past it. Grid values are rungs of the ladders.
LADDERS = {
    "alpha": [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0],
    "regularization": [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0],
    "skip_weight": [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0],
    "skip_ratio": [0.05, 0.1, 0.25, 0.5, 0.75, 1.0],
    "popularity_exponent": [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0],
}
CLIMB_STEPS = 0 if QUICK else 12
# Signed data has watch ratio 0 (label 0) or 1 (label 1): every skip_ratio in (0, 1]
# marks exactly the label-0 rows as skips, so one value stands for all of them.
SIGNED_SKIP_RATIOS = [0.5]

# The extension's current defaults, read from the built extension at start (a table
# created with no options), evaluated as a reference row.
CURRENT_DEFAULTS = {}
# Confidence forms for watch-time rows; "ratio" (c = alpha·R, no floor of 1) where the
# built extension has it.
WATCH_FORMS = ["linear", "log"]
# popularity_exponent (missing-data weights ∝ popularity^ω) where the extension has it:
# kept at 0 in the rows, explored in the shared-default climb.
HAS_EXPONENT = False
# tune (the refit chooses alpha / regularization / scaling by a hold-out split) where the
# extension has it: on in the defaults row (as the extension ships), off everywhere else
# so that every searched configuration is fitted as given.
HAS_TUNE = False
# regularization_scaling (λ of a row = λ · s(its observed pairs)) where the extension has
# it: every scaling it offers among these is searched for the binary and watch-time rows
# (each with its own λ grid; the climbs keep the scaling), and "none" elsewhere.
SCALINGS = ["none"]
KNOWN_SCALINGS = ["none", "count", "sqrt"]
# Fixed default candidates, reported on validation and test of both datasets next to the
# current defaults and the searched shared default: settings a product could ship
# (coverage stays high), picked from the searches' results (see eval/README.md).
DEFAULT_CANDIDATES = [
    {"confidence": "ratio", "alpha": 2.0, "regularization": 2.0, "regularization_scaling": "sqrt", "skip_ratio": 0.1, "skip_weight": 1.0},
    {"confidence": "ratio", "alpha": 2.0, "regularization": 1.0, "regularization_scaling": "sqrt", "skip_ratio": 0.1, "skip_weight": 1.0},
    {"confidence": "ratio", "alpha": 2.0, "regularization": 0.2, "regularization_scaling": "count", "skip_ratio": 0.1, "skip_weight": 1.0},
    {"confidence": "ratio", "alpha": 2.0, "regularization": 20.0, "skip_ratio": 0.1, "skip_weight": 1.0},
    {"confidence": "ratio", "alpha": 1.0, "regularization": 10.0, "skip_ratio": 0.0, "skip_weight": 1.0},
    {"confidence": "ratio", "alpha": 1.0, "regularization": 10.0, "skip_ratio": 0.1, "skip_weight": 1.0},
    {"confidence": "ratio", "alpha": 1.0, "regularization": 10.0, "skip_ratio": 0.1, "skip_weight": 10.0},
    {"confidence": "ratio", "alpha": 2.0, "regularization": 10.0, "skip_ratio": 0.1, "skip_weight": 1.0},
    {"confidence": "ratio", "alpha": 2.0, "regularization": 1.0, "skip_ratio": 0.1, "skip_weight": 1.0},
    {"confidence": "linear", "alpha": 2.0, "regularization": 20.0, "skip_ratio": 0.25, "skip_weight": 2.0},
]

POPULARITY_NOTES = {
    # Set by probe_extension from the table's skip rule (the extension's defaults).
    "popularity": "foryou before any refit: distinct train users who watched (skips do not count)",
    "popularity of positives (Python)": "distinct train users with a positive (KuaiRec: ratio ≥ 2; signed: label 1)",
}

T0 = time.time()
BUILD = {}


def log(msg):
    print(f"[{time.time() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Metrics: exactly the formulas of src/model/evaluate.rs
# ---------------------------------------------------------------------------------------

def ranking_metrics(ranked, relevant, k, catalogue):
    """ranked: user -> list of item ids, best first; relevant: user -> set of item ids.
    Users with no relevant item are skipped. Sums run in ascending user order, as the
    extension's BTreeMap does."""
    sums = {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "map": 0.0}
    per_user = per_user_metrics(ranked, relevant, k)
    recommended = set()
    for user, metrics in per_user.items():
        recommended.update(list(ranked.get(user, []))[:k])
        for key in sums:
            sums[key] += metrics[key]
    n = max(len(per_user), 1)
    out = {key: value / n for key, value in sums.items()}
    out["users"] = len(per_user)
    out["k"] = k
    out["coverage"] = len(recommended) / catalogue if catalogue else 0.0
    return out


def per_user_metrics(ranked, relevant, k):
    """user -> {precision, recall, ndcg, map} at k, in ascending user order, for the users
    with a relevant item (the terms ranking_metrics averages)."""
    out = {}
    for user in sorted(relevant):
        rel = relevant[user]
        if not rel or k == 0:
            continue
        hits, dcg, ap = 0, 0.0, 0.0
        for at, item in enumerate(list(ranked.get(user, []))[:k]):
            if item in rel:
                hits += 1
                dcg += 1.0 / math.log2(at + 2)
                ap += hits / (at + 1)
        ideal = min(k, len(rel))
        idcg = sum(1.0 / math.log2(at + 2) for at in range(ideal))
        out[user] = {"precision": hits / k, "recall": hits / len(rel), "ndcg": dcg / idcg, "map": ap / ideal}
    return out


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

class Events:
    """Training events (one per row) and what the run needs to know about them."""

    def __init__(self, users, items, watch_time, duration):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.watch_time = np.asarray(watch_time, dtype=np.float64)
        self.duration = np.asarray(duration, dtype=np.float64)

    def __len__(self):
        return len(self.users)

    @property
    def ratio(self):
        return self.watch_time / self.duration


class Split:
    """One training set and the relevant held-out items of each user."""

    def __init__(self, name, train, relevant):
        self.name = name
        self.train = train
        self.relevant = relevant  # user id -> set of item ids

    @property
    def relevant_rows(self):
        return [(u, i) for u in sorted(self.relevant) for i in sorted(self.relevant[u])]


def relevant_of(users, items, mask):
    out = {}
    for u, i in zip(users[mask].tolist(), items[mask].tolist()):
        out.setdefault(u, set()).add(i)
    return out


def per_user_holdout(users, rng, share):
    """Boolean mask: for each user, round(share * n_user) of its rows, chosen at random."""
    n = len(users)
    keys = rng.random(n)
    order = np.lexsort((keys, users))  # by user, then random key
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)
    take = np.floor(share * np.repeat(counts, counts) + 0.5).astype(np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[order[rank < take]] = True
    return mask


def load_kuairec(seeds):
    path = os.path.join(DATA, "kuairec-small-watchratio-sample", "random.txt")
    raw = np.loadtxt(path, delimiter=",", dtype=np.float64)
    users, items, ratio = raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64), raw[:, 2]
    tune, final = {}, {}
    for seed in seeds:
        rng = np.random.Generator(np.random.PCG64(seed))
        test = per_user_holdout(users, rng, TEST_SHARE)
        train_idx = np.flatnonzero(~test)
        valid_sub = per_user_holdout(users[train_idx], rng, VALID_SHARE)
        valid = np.zeros(len(users), dtype=bool)
        valid[train_idx[valid_sub]] = True
        fit = ~test & ~valid

        def events(mask):
            return Events(users[mask], items[mask], ratio[mask], np.ones(mask.sum()))

        final[seed] = Split(f"kuairec seed {seed}: train 80% / test 20%",
                            events(~test), relevant_of(users, items, test & (ratio >= RELEVANT_RATIO)))
        tune[seed] = Split(f"kuairec seed {seed}: train 72% / valid 8%",
                           events(fit), relevant_of(users, items, valid & (ratio >= RELEVANT_RATIO)))
    info = {"path": path, "rows": int(len(users)), "users": int(len(np.unique(users))),
            "items": int(len(np.unique(items))),
            "relevant_rule": f"held-out row with watch_ratio >= {RELEVANT_RATIO}",
            "split": f"per user: round({TEST_SHARE}*n) rows to test (numpy Generator(PCG64(seed))), "
                     f"then round({VALID_SHARE}*n_train) of the train rows to validation (same generator)",
            "events": "watch_time = watch_ratio, duration = 1.0, ts = 0"}
    return tune, final, info


def load_signed(seeds):
    folder = os.path.join(DATA, "kuairec-sigformer-signed")

    def read(name):
        raw = np.loadtxt(os.path.join(folder, name + ".txt"), dtype=np.float64)
        return raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64), raw[:, 2]

    tu, ti, tl = read("train")
    train = Events(tu, ti, (tl > 0.5).astype(np.float64), np.ones(len(tu)))
    vu, vi, vl = read("valid")
    su, si, sl = read("test")
    tune_split = Split("signed: train.txt / valid.txt", train, relevant_of(vu, vi, vl > 0.5))
    final_split = Split("signed: train.txt / test.txt", train, relevant_of(su, si, sl > 0.5))
    info = {"path": folder, "train_rows": int(len(tu)), "train_positive": int((tl > 0.5).sum()),
            "users": int(len(np.unique(tu))), "items": int(len(np.unique(ti))),
            "relevant_rule": "label 1 rows of valid.txt (tuning) / test.txt (report)",
            "split": "given: train.txt / valid.txt / test.txt; the test run trains on train.txt only",
            "events": "label 1: watch_time = 1, duration = 1; label 0: watch_time = 0, duration = 1; ts = 0"}
    return {s: tune_split for s in seeds}, {s: final_split for s in seeds}, info


# ---------------------------------------------------------------------------------------
# foryou, through SQL
# ---------------------------------------------------------------------------------------

def foryou_options(cfg, seed):
    """The refit/CREATE options of one configuration."""
    opts = {"factors": FACTORS, "iterations": ITERATIONS, "threads": THREADS, "seed": int(seed),
            "confidence": cfg["confidence"], "alpha": float(cfg["alpha"]),
            "regularization": float(cfg["regularization"]),
            "skip_ratio": float(cfg.get("skip_ratio", 0.0))}
    if "skip_weight" in cfg:
        opts["skip_weight"] = float(cfg["skip_weight"])
    if HAS_EXPONENT:
        opts["popularity_exponent"] = float(cfg.get("popularity_exponent", 0.0))
    if HAS_TUNE:
        opts["tune"] = bool(cfg.get("tune", False))
    if len(SCALINGS) > 1:
        opts["regularization_scaling"] = cfg.get("regularization_scaling", "none")
    elif cfg.get("regularization_scaling", "none") != "none":
        raise ValueError("the built extension has no regularization_scaling option")
    return opts


class Foryou:
    """One in-memory database; one foryou table per distinct training set, one holdout
    table per split. Configurations are applied per refit with foryou_refit(m, json)."""

    def __init__(self):
        self.con = sqlite3.connect(":memory:")
        self.con.enable_load_extension(True)
        self.con.load_extension(EXT)
        self.version = self.con.execute("SELECT foryou_version()").fetchone()[0]
        self.tables = {}  # id(Events) -> table name
        self.holdouts = {}  # id(Split) -> holdout table name
        self.popularity = {}  # (table, holdout) -> {k: metrics}
        self.refits = 0
        self.refit_seconds = 0.0

    def _load_events(self, table, events, create_opts):
        con = self.con
        args = ", ".join(f"{k}={v}" for k, v in create_opts.items())
        con.execute(f"CREATE VIRTUAL TABLE {table} USING foryou({args})")
        con.execute("CREATE TEMP TABLE stage(user_id INTEGER, item_id INTEGER, watch_time REAL, duration REAL, ts INTEGER)")
        with con:
            con.executemany("INSERT INTO stage VALUES (?, ?, ?, ?, 0)",
                            zip(events.users.tolist(), events.items.tolist(),
                                events.watch_time.tolist(), events.duration.tolist()))
            con.execute(f"INSERT INTO {table}(user_id, item_id, watch_time, duration, ts) "
                        "SELECT user_id, item_id, watch_time, duration, ts FROM stage")
        con.execute("DROP TABLE stage")

    def table_for(self, events):
        key = id(events)
        if key not in self.tables:
            table = f"m{len(self.tables)}"
            self._load_events(table, events, {"factors": FACTORS, "iterations": ITERATIONS, "threads": THREADS})
            self.tables[key] = table
        return self.tables[key]

    def holdout_for(self, split):
        key = id(split)
        if key not in self.holdouts:
            name = f"h{len(self.holdouts)}"
            self.con.execute(f"CREATE TABLE {name}(user_id INTEGER, item_id INTEGER)")
            with self.con:
                self.con.executemany(f"INSERT INTO {name} VALUES (?, ?)", split.relevant_rows)
            self.holdouts[key] = name
        return self.holdouts[key]

    def evaluate(self, table, holdout, k):
        return json.loads(self.con.execute("SELECT foryou_evaluate(?, ?, ?)", (table, holdout, k)).fetchone()[0])

    def register(self, split):
        """Creates the split's tables; measures popularity before the table's first refit."""
        fresh = id(split.train) not in self.tables
        table, holdout = self.table_for(split.train), self.holdout_for(split)
        if (table, holdout) not in self.popularity:
            if not fresh and self.con.execute(f"SELECT count(*) FROM {table}_model").fetchone()[0]:
                raise RuntimeError("popularity must be measured before the first refit")
            self.popularity[(table, holdout)] = {k: self.evaluate(table, holdout, k) for k in KS}
        return table, holdout

    def refit(self, table, cfg, seed):
        started = time.time()
        report = json.loads(self.con.execute("SELECT foryou_refit(?, ?)",
                                             (table, json.dumps(dict(foryou_options(cfg, seed), mode="full")))).fetchone()[0])
        self.refits += 1
        self.refit_seconds += time.time() - started
        return report

    def run(self, split, cfg, seed, ks):
        table, holdout = self.register(split)
        self.refit(table, cfg, seed)
        return {k: self.evaluate(table, holdout, k) for k in ks}

    def recommend_lists(self, table, users, k):
        return {u: [row[0] for row in self.con.execute("SELECT item_id FROM recommend(?, ?, ?)", (u, k, table))]
                for u in users}


# ---------------------------------------------------------------------------------------
# implicit ALS
# ---------------------------------------------------------------------------------------

def implicit_values(events, cfg):
    """Per-event values of the user x item matrix given to implicit (its confidence C_ui;
    a negative value means preference 0 with confidence |value|)."""
    ratio = events.ratio
    alpha = cfg["alpha"]
    if cfg["values"] == "alpha*r":
        values = alpha * ratio
    elif cfg["values"] == "1+alpha*r":
        values = 1.0 + alpha * ratio
    else:
        raise ValueError(cfg["values"])
    if cfg.get("skip_ratio", 0.0) > 0:
        values = np.where(ratio < cfg["skip_ratio"], -cfg["skip_weight"], values)
    return values


class Implicit:
    def __init__(self):
        self.fits = 0
        self.fit_seconds = 0.0
        self.cache = {}  # id(Events) -> (user ids, item ids, user index, item index, filter csr)

    def _index(self, events):
        key = id(events)
        if key not in self.cache:
            user_ids, uidx = np.unique(events.users, return_inverse=True)
            item_ids, iidx = np.unique(events.items, return_inverse=True)
            seen = sp.csr_matrix((np.ones(len(events), dtype=np.float32), (uidx, iidx)),
                                 shape=(len(user_ids), len(item_ids)))
            self.cache[key] = (user_ids, item_ids, uidx, iidx, seen)
        return self.cache[key]

    def run(self, split, cfg, seed, ks):
        events = split.train
        user_ids, item_ids, uidx, iidx, seen = self._index(events)
        values = implicit_values(events, cfg).astype(np.float32)
        keep = values != 0  # a zero is no entry
        matrix = sp.csr_matrix((values[keep], (uidx[keep], iidx[keep])), shape=seen.shape, dtype=np.float32)
        started = time.time()
        model = AlternatingLeastSquares(factors=FACTORS, iterations=ITERATIONS, regularization=cfg["regularization"],
                                        alpha=1.0, use_cg=True, num_threads=THREADS, random_state=seed)
        model.fit(matrix, show_progress=False)
        self.fits += 1
        self.fit_seconds += time.time() - started
        eval_users = [u for u in sorted(split.relevant) if split.relevant[u]]
        rows = np.searchsorted(user_ids, eval_users)
        assert np.array_equal(user_ids[rows], eval_users), "every evaluated user has training events"
        # Filter every item the user has a training event for (as foryou does), including
        # the ones whose value is 0 and so are not in `matrix`.
        ids, _ = model.recommend(rows, seen[rows], N=max(ks), filter_already_liked_items=True)
        ranked = {u: [int(item_ids[i]) for i in row if i >= 0] for u, row in zip(eval_users, ids)}
        return {k: ranking_metrics(ranked, split.relevant, k, len(item_ids)) for k in ks}


# ---------------------------------------------------------------------------------------
# Tuning and reporting
# ---------------------------------------------------------------------------------------

def cfg_key(engine, cfg):
    return engine + ":" + json.dumps(cfg, sort_keys=True)


def describe(cfg):
    if "values" in cfg:  # implicit
        c = "alpha·r" if cfg["values"] == "alpha*r" else "1 + alpha·r"
        text = f"C = {c}, alpha={cfg['alpha']:g}, regularization={cfg['regularization']:g}"
        if cfg.get("skip_ratio"):
            text += f", skips (r < {cfg['skip_ratio']:g}) as C = -{cfg['skip_weight']:g}"
        else:
            text += ", no negatives"
        return text
    parts = []
    for key in ("values", "tune", "confidence", "alpha", "regularization", "regularization_scaling", "skip_ratio",
                "skip_weight", "popularity_exponent"):
        if key in cfg:
            value = cfg[key]
            if key == "tune":
                continue
            if key == "skip_ratio" and not value:
                parts.append("skips off")
                continue
            if key == "skip_weight" and not cfg.get("skip_ratio"):
                continue
            if key == "popularity_exponent" and not value:
                continue
            if key == "regularization_scaling" and value == "none":
                continue
            parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    text = ", ".join(parts)
    if cfg.get("tune"):
        return f"tune=on (each refit picks alpha, regularization and scaling from its ladder), {text}"
    return text


def mean_sd(values):
    values = np.asarray(values, dtype=np.float64)
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), sd


class Dataset:
    def __init__(self, name, tune, final, info, foryou, imp):
        self.name, self.tune, self.final, self.info = name, tune, final, info
        self.engines = {"foryou": foryou, "implicit": imp}
        self.foryou = foryou
        self.validation = {}  # cfg_key -> {"engine", "cfg", "per_seed": {seed: ndcg}, "mean"}
        self.tested = {}  # cfg_key -> [{k: metrics} per seed]

    def validate(self, engine, cfg):
        key = cfg_key(engine, cfg)
        if key not in self.validation:
            per_seed = {}
            for seed in SEEDS:
                per_seed[seed] = self.engines[engine].run(self.tune[seed], cfg, seed, (K_NDCG,))[K_NDCG]["ndcg"]
            self.validation[key] = {"engine": engine, "cfg": dict(cfg), "per_seed": per_seed,
                                    "mean": float(np.mean(list(per_seed.values())))}
        return self.validation[key]["mean"]

    def best_of(self, engine, cfgs, label):
        scored = [(self.validate(engine, cfg), i, cfg) for i, cfg in enumerate(cfgs)]
        best = max(scored, key=lambda s: (s[0], -s[1]))  # first of equals wins
        log(f"{self.name}: {label}: {len(cfgs)} configs, best validation NDCG@10 {best[0]:.4f} ({describe(best[2])})")
        return dict(best[2])

    def test(self, engine, cfg):
        key = cfg_key(engine, cfg)
        if key not in self.tested:
            self.tested[key] = [self.engines[engine].run(self.final[seed], cfg, seed, KS) for seed in SEEDS]
        return self.tested[key]

    def popularity(self):
        per_seed = []
        for seed in SEEDS:
            table, holdout = self.foryou.register(self.final[seed])
            per_seed.append(self.foryou.popularity[(table, holdout)])
        return per_seed

    def positive_popularity(self):
        """Reference baseline computed in Python: items by the number of distinct training
        users with a *positive* event on them (KuaiRec: watch_ratio >= 2.0, the relevance
        threshold; signed: label 1), training items of the user left out."""
        per_seed = []
        for seed in SEEDS:
            split = self.final[seed]
            ev = split.train
            positive = ev.ratio >= (RELEVANT_RATIO if self.name == "KuaiRec" else 0.5)
            pairs = set(zip(ev.users[positive].tolist(), ev.items[positive].tolist()))
            counts = {}
            for _, item in pairs:
                counts[item] = counts.get(item, 0) + 1
            catalogue = np.unique(ev.items).tolist()
            order = sorted(catalogue, key=lambda i: (-counts.get(i, 0), i))
            seen = {}
            for u, i in zip(ev.users.tolist(), ev.items.tolist()):
                seen.setdefault(u, set()).add(i)
            ranked = {}
            for u in split.relevant:
                lst = []
                for item in order:
                    if item not in seen.get(u, ()):
                        lst.append(item)
                        if len(lst) == max(KS):
                            break
                ranked[u] = lst
            per_seed.append({k: ranking_metrics(ranked, split.relevant, k, len(catalogue)) for k in KS})
        return per_seed

    def register_all(self):
        for seed in SEEDS:
            self.foryou.register(self.tune[seed])
            self.foryou.register(self.final[seed])


def summarize(per_seed):
    """per_seed: list of {k: metrics}. The reported figures."""
    figures = {
        "ndcg@10": [m[10]["ndcg"] for m in per_seed],
        "recall@20": [m[20]["recall"] for m in per_seed],
        "precision@10": [m[10]["precision"] for m in per_seed],
        "map@10": [m[10]["map"] for m in per_seed],
        "coverage@10": [m[10]["coverage"] for m in per_seed],
    }
    out = {name: {"mean": mean_sd(v)[0], "sd": mean_sd(v)[1], "per_seed": v} for name, v in figures.items()}
    out["users"] = per_seed[0][10]["users"]
    return out


def skip_rule_at_fixed_settings(ds):
    """The skip rule ablated at each rung of the tune ladder, nothing chosen. The ladder is
    read from the report of a tuned refit with the shipped defaults (so it is the built
    extension's own). At each rung three models differ only in how a swipe-away is fed:
    skip-aware (the shipped rule: p = 0, c = 1 + skip_weight), rule off (`ratio`: its
    confidence is alpha·0 = 0, so it is dropped) and skip-blind (`linear`, rule off: a
    watch of confidence 1)."""
    seed = SEEDS[0]
    table, _ = ds.foryou.register(ds.final[seed])
    report = ds.foryou.refit(table, dict(CURRENT_DEFAULTS, tune=True), seed)
    out = []
    for rung in report.get("tuned", {}).get("candidates", []):
        setting = {key: rung[key] for key in ("alpha", "regularization", "regularization_scaling")}
        aware = dict(CURRENT_DEFAULTS, tune=False, **setting)
        variants = {"skip-aware": aware, "rule off": dict(aware, skip_ratio=0.0),
                    "skip-blind": dict(aware, confidence="linear", skip_ratio=0.0)}
        entry = {"rung": setting, "holdout_ndcg_seed0": rung["ndcg"], "holdout_sweeps": rung.get("sweeps"),
                 "cfgs": variants}
        for name, cfg in variants.items():
            entry[name] = summarize(ds.test("foryou", cfg))["ndcg@10"]
        d = np.array(entry["skip-aware"]["per_seed"]) - np.array(entry["skip-blind"]["per_seed"])
        entry["aware_minus_blind"] = {"mean": float(d.mean()), "sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                                      "wins": int((d > 0).sum()), "seeds": len(d)}
        spread = entry["skip-aware"]["sd"] + entry["skip-blind"]["sd"]
        entry["holds"] = bool(entry["skip-aware"]["mean"] - entry["skip-blind"]["mean"] > spread)
        out.append(entry)
    log(f"{ds.name}: skip rule at {len(out)} fixed settings: skip-aware beats skip-blind beyond the spread at "
        f"{sum(e['holds'] for e in out)}")
    return out


def user_bootstrap(ds, a_cfg, b_cfg, resamples=2000):
    """What the test users alone can tell apart: per-user NDCG@10 of A and B (first seed,
    same split), the mean difference and a 95% percentile interval from resampling the
    users with replacement (fixed generator). The seed spread measures how much a model
    moves with its initialisation; this measures how much the figure would move with
    another sample of users, which on the signed log is much larger."""
    seed = SEEDS[0]
    split = ds.final[seed]
    table, _ = ds.foryou.register(split)
    users = sorted(u for u in split.relevant if split.relevant[u])
    ndcg = []
    for cfg in (a_cfg, b_cfg):
        ds.foryou.refit(table, cfg, seed)
        per_user = per_user_metrics(ds.foryou.recommend_lists(table, users, K_NDCG), split.relevant, K_NDCG)
        ndcg.append(np.array([per_user[u]["ndcg"] for u in users]))
    d = ndcg[0] - ndcg[1]
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, len(d), (resamples, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"seed": seed, "users": len(d), "mean": float(d.mean()), "ci95": [float(lo), float(hi)],
            "a_better": int((d > 0).sum()), "b_better": int((d < 0).sum()), "resamples": resamples}


def climb(ds, engine, cfg, params, label):
    """Hill climb from cfg over LADDERS[param] for each of params (see LADDERS)."""
    best, score = dict(cfg), ds.validate(engine, cfg)
    start = score
    for _ in range(CLIMB_STEPS):
        neighbours = []
        for param in params:
            ladder = LADDERS[param]
            if best.get(param) not in ladder:
                continue
            at = ladder.index(best[param])
            neighbours += [dict(best, **{param: ladder[j]}) for j in (at - 1, at + 1) if 0 <= j < len(ladder)]
        scored = [(ds.validate(engine, n), i, n) for i, n in enumerate(neighbours)]
        top = max(scored, key=lambda s: (s[0], -s[1]))
        if top[0] <= score:
            break
        score, best = top[0], dict(top[2])
    if CLIMB_STEPS:
        log(f"{ds.name}: {label}: climb {start:.4f} -> {score:.4f} ({describe(best)})")
    return best


def tune_dataset(ds, signed):
    """Grid search, then hill climbs, on the validation split; returns {row: cfg}.
    Each confidence form (foryou) or value map (implicit) is climbed separately, and the
    better one on validation is kept, so that neither is judged before its optimum."""
    skip_ratios = SIGNED_SKIP_RATIOS if signed else SKIP_RATIOS
    skip_params = ["alpha", "regularization", "skip_weight"] + ([] if signed else ["skip_ratio"])
    grid = [(a, l) for a in ALPHAS for l in REGS]

    def best_climbed(engine, groups, params, label):
        found = []
        for name, cfgs in groups:
            best = ds.best_of(engine, cfgs, f"{label} [{name}]")
            found.append(climb(ds, engine, best, params, f"{label} [{name}]"))
        return max(found, key=lambda c: ds.validate(engine, c))

    def scaled_grid(form, scaling):
        # "none" is left out of the configuration, as before the option existed.
        extra = {} if scaling == "none" else {"regularization_scaling": scaling}
        return [dict({"confidence": form, "alpha": a, "regularization": l, "skip_ratio": 0.0}, **extra)
                for a in ALPHAS for l in REGS_BY_SCALING[scaling]]

    chosen = {}
    chosen["foryou binary"] = best_climbed("foryou", [(f"binary, {sc}", scaled_grid("binary", sc)) for sc in SCALINGS],
                                           ["alpha", "regularization"], "foryou binary")
    # Watch-time: the grid and a climb for each confidence form and regularization
    # scaling; the best scaling of each form, then the best form, wins.
    watch_by_form = {}
    for form in WATCH_FORMS:
        found = []
        for sc in SCALINGS:
            best = ds.best_of("foryou", scaled_grid(form, sc), f"foryou watch-time [{form}, {sc}]")
            found.append(climb(ds, "foryou", best, ["alpha", "regularization"], f"foryou watch-time [{form}, {sc}]"))
        watch_by_form[form] = max(found, key=lambda c: ds.validate("foryou", c))
    watch = max(watch_by_form.values(), key=lambda c: ds.validate("foryou", c))
    chosen["foryou watch-time"] = watch
    # With confidence=ratio a zero-ratio watch has confidence 0 (no weight at all), so it
    # is not skip-blind on the signed data; the best linear/log setting is.
    chosen["foryou watch-time, linear/log"] = max((watch_by_form[f] for f in ("linear", "log")),
                                                  key=lambda c: ds.validate("foryou", c))
    # Watch-time + skips: the skip grid on the best watch-time setting; then, for every
    # form, a climb over alpha, regularization and the skip rule from that form's best
    # watch-time setting with the best skip rule.
    rule = ds.best_of("foryou", [dict(watch, skip_ratio=s, skip_weight=w) for s in skip_ratios for w in SKIP_WEIGHTS],
                      "foryou skips (skip_ratio x skip_weight)")
    found = [climb(ds, "foryou", dict(watch_by_form[form], skip_ratio=rule["skip_ratio"], skip_weight=rule["skip_weight"]),
                   skip_params, f"foryou skips [{form}]") for form in WATCH_FORMS]
    chosen["foryou watch-time + skips"] = max(found, key=lambda c: ds.validate("foryou", c))
    # implicit: the same grid and climb for each value map (alpha*r or 1+alpha*r); then
    # skips given as negative values -skip_weight, the same search as ours.
    base_by_map = {}
    for values in ("alpha*r", "1+alpha*r"):
        best = ds.best_of("implicit", [{"values": values, "alpha": a, "regularization": l} for a, l in grid],
                          f"implicit positives only [{values}]")
        base_by_map[values] = climb(ds, "implicit", best, ["alpha", "regularization"], f"implicit positives only [{values}]")
    base = max(base_by_map.values(), key=lambda c: ds.validate("implicit", c))
    rule = ds.best_of("implicit", [dict(base, skip_ratio=s, skip_weight=w) for s in skip_ratios for w in SKIP_WEIGHTS],
                      "implicit negatives (skip_ratio x skip_weight)")
    found = [climb(ds, "implicit", dict(base_by_map[v], skip_ratio=rule["skip_ratio"], skip_weight=rule["skip_weight"]),
                   skip_params, f"implicit negatives [{v}]") for v in ("alpha*r", "1+alpha*r")]
    neg = max(found, key=lambda c: ds.validate("implicit", c))
    chosen["implicit ALS, positives only"] = base
    chosen["implicit ALS, skips as negatives"] = neg
    chosen["implicit ALS"] = base if ds.validate("implicit", base) >= ds.validate("implicit", neg) else neg
    return chosen


def shared_default(datasets, chosen):
    """One foryou configuration for both datasets. Candidates: every combination of the two
    datasets' best watch-time + skips values (KuaiRec's skip_ratio: on the signed data all
    skip ratios in (0, 1] are the same rule), plus the current defaults. Score: the mean
    over datasets of validation NDCG@10 / that dataset's best foryou validation NDCG@10.
    Then a hill climb of the score from the best candidate."""
    k_best, s_best = chosen["kuairec"]["foryou watch-time + skips"], chosen["signed"]["foryou watch-time + skips"]
    candidates = []
    # λ means something different under each scaling: (scaling, λ) pairs go together.
    regs = sorted({(c.get("regularization_scaling", "none"), c["regularization"]) for c in (k_best, s_best)})
    for form in sorted({k_best["confidence"], s_best["confidence"]}):
        for alpha in sorted({k_best["alpha"], s_best["alpha"]}):
            for scaling, reg in regs:
                for weight in sorted({k_best["skip_weight"], s_best["skip_weight"]}):
                    cand = {"confidence": form, "alpha": alpha, "regularization": reg,
                            "skip_ratio": k_best["skip_ratio"], "skip_weight": weight}
                    if scaling != "none":
                        cand["regularization_scaling"] = scaling
                    candidates.append(cand)
    candidates.append(dict(CURRENT_DEFAULTS))
    best_val = {key: max(v["mean"] for v in ds.validation.values() if v["engine"] == "foryou")
                for key, ds in datasets.items()}
    scored = {}

    def score(cfg):
        key = cfg_key("foryou", cfg)
        if key not in scored:
            val = {name: ds.validate("foryou", cfg) for name, ds in datasets.items()}
            rel = {name: val[name] / best_val[name] for name in datasets}
            scored[key] = {"cfg": dict(cfg), "validation_ndcg": val, "relative": rel,
                           "score": float(np.mean(list(rel.values())))}
        return scored[key]["score"]

    best = max(candidates, key=score)
    if HAS_EXPONENT:
        best = dict(best, popularity_exponent=best.get("popularity_exponent", 0.0))
    start = score(best)
    for _ in range(CLIMB_STEPS):
        neighbours = []
        for param in ("alpha", "regularization", "skip_weight", "skip_ratio") + (("popularity_exponent",) if HAS_EXPONENT else ()):
            ladder = LADDERS[param]
            if best.get(param) not in ladder:
                continue
            at = ladder.index(best[param])
            neighbours += [dict(best, **{param: ladder[j]}) for j in (at - 1, at + 1) if 0 <= j < len(ladder)]
        top = max(neighbours, key=score)
        if score(top) <= score(best):
            break
        best = top
    log(f"shared default: climb {start:.4f} -> {score(best):.4f}: {describe(best)}")
    return scored[cfg_key("foryou", best)], list(scored.values()), best_val


def cross_check(ds):
    """Python metrics from recommend() equal foryou_evaluate's JSON; CREATE-time options
    give the same model as per-refit JSON options."""
    fy = ds.foryou
    seed = SEEDS[0]
    split = ds.final[seed]
    table, holdout = fy.register(split)
    users = sorted(u for u in split.relevant if split.relevant[u])
    catalogue = len(np.unique(split.train.items))
    checks = []

    def compare(label, cfg):
        lists = fy.recommend_lists(table, users, max(KS))
        for k in KS:
            got = ranking_metrics({u: l[:k] for u, l in lists.items()}, split.relevant, k, catalogue)
            want = fy.evaluate(table, holdout, k)
            for name in ("users", "precision", "recall", "ndcg", "map", "coverage"):
                if abs(got[name] - want[name]) > 1e-9:
                    raise AssertionError(f"{ds.name} {label} k={k}: Python {name} {got[name]} != foryou_evaluate {want[name]}")
            checks.append({"model": label, "k": k, "ndcg": want["ndcg"], "users": want["users"]})
        return {k: fy.evaluate(table, holdout, k) for k in KS}

    # Popularity (before any refit of this table), then a fitted model.
    if fy.con.execute(f"SELECT count(*) FROM {table}_model").fetchone()[0] == 0:
        compare("popularity", None)
    cfg = {"confidence": "log", "alpha": 10.0, "regularization": 0.05, "skip_ratio": 0.25, "skip_weight": 2.0}
    fy.refit(table, cfg, seed)
    via_json = compare("foryou " + describe(cfg), cfg)
    # A refit is reproducible and does not depend on the number of threads.
    fy.refit(table, cfg, seed)
    again = {k: fy.evaluate(table, holdout, k) for k in KS}
    fy.con.execute("SELECT foryou_refit(?, ?)", (table, json.dumps(dict(foryou_options(cfg, seed), threads=1)))).fetchone()
    one_thread = {k: fy.evaluate(table, holdout, k) for k in KS}
    if again != via_json or one_thread != via_json:
        raise AssertionError(f"{ds.name}: refits of one configuration differ: {via_json} / {again} / threads=1 {one_thread}")
    # Same configuration given at CREATE time in a fresh table.
    opts = foryou_options(cfg, seed)
    opts["confidence"] = f"'{opts['confidence']}'"
    fresh = "xcheck"
    fy._load_events(fresh, split.train, opts)
    fy.con.execute("SELECT foryou_refit(?)", (fresh,)).fetchone()
    via_create = {k: fy.evaluate(fresh, holdout, k) for k in KS}
    fy.con.execute(f"DROP TABLE {fresh}")
    for k in KS:
        a, b = dict(via_json[k]), dict(via_create[k])
        a.pop("model"), b.pop("model")
        if a != b:
            raise AssertionError(f"{ds.name}: CREATE options and refit JSON options disagree at k={k}: {a} vs {b}")
    log(f"{ds.name}: cross-check passed ({len(checks)} metric sets equal to 1e-9; CREATE options == refit JSON; refit reproducible, threads=1 == threads=2)")
    return checks


def fmt(fig):
    return f"{fig['mean']:.4f} ± {fig['sd']:.4f}"


def probe_extension():
    """What the built extension offers: its defaults and optional forms/options."""
    global HAS_EXPONENT, SCALINGS, HAS_TUNE
    con = sqlite3.connect(":memory:")
    con.enable_load_extension(True)
    con.load_extension(EXT)
    con.execute("CREATE VIRTUAL TABLE d USING foryou()")
    stored = dict(con.execute("SELECT key, value FROM d_config").fetchall())
    CURRENT_DEFAULTS.clear()
    CURRENT_DEFAULTS.update({"confidence": stored["confidence"], "alpha": float(stored["alpha"]),
                             "regularization": float(stored["regularization"]),
                             "skip_ratio": float(stored.get("skip_ratio", 0.0)),
                             "skip_weight": float(stored.get("skip_weight", 1.0))})
    HAS_EXPONENT = "popularity_exponent" in stored
    HAS_TUNE = "tune" in stored
    if HAS_TUNE:
        CURRENT_DEFAULTS["tune"] = str(stored["tune"]).lower() in ("1", "true", "on", "yes")
    if HAS_EXPONENT:
        CURRENT_DEFAULTS["popularity_exponent"] = float(stored["popularity_exponent"])
    if "regularization_scaling" in stored:
        SCALINGS = ["none"]
        for n, scaling in enumerate(KNOWN_SCALINGS[1:]):
            try:
                con.execute(f"CREATE VIRTUAL TABLE s{n} USING foryou(regularization_scaling = {scaling})")
                SCALINGS.append(scaling)
            except sqlite3.Error:
                pass
        if stored["regularization_scaling"] != "none":
            CURRENT_DEFAULTS["regularization_scaling"] = stored["regularization_scaling"]
    # The popularity row's tables are created with the default skip rule: since the
    # fallback counts only viewers who watched, events below it are not views.
    POPULARITY_NOTES["popularity"] = (
        "foryou before any refit: distinct train users who watched "
        f"(events with ratio < skip_ratio = {CURRENT_DEFAULTS['skip_ratio']:g}, the default, do not count)")
    try:
        con.execute("CREATE VIRTUAL TABLE r USING foryou(confidence = ratio)")
        if "ratio" not in WATCH_FORMS:
            WATCH_FORMS.append("ratio")
    except sqlite3.Error:
        pass
    con.close()
    return stored


def build_info():
    """The commit of the work tree and the time the loaded extension was built."""
    import subprocess
    info = {"extension": EXT + ".so"}
    try:
        info["extension_mtime"] = datetime.datetime.fromtimestamp(os.path.getmtime(EXT + ".so")).astimezone().isoformat(timespec="seconds")
        run = lambda *args: subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=10).stdout.strip()
        info["git_commit"] = run("rev-parse", "--short", "HEAD")
        info["src_modified"] = bool(run("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"))
    except Exception as e:  # no git: not fatal
        info["error"] = str(e)
    return info


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}


def main():
    global BUILD
    started = time.time()
    BUILD = build_info()
    if not os.path.exists(EXT + ".so"):
        sys.exit(f"eval: {EXT}.so is missing; run `make loadable` first")
    BUILD["defaults"] = probe_extension()
    log(f"extension defaults {describe(CURRENT_DEFAULTS)}; watch-time forms {WATCH_FORMS}; "
        f"popularity_exponent {'yes' if HAS_EXPONENT else 'no'}; regularization scalings {SCALINGS}")
    if not os.path.isdir(DATA):
        sys.exit(f"eval: data folder {DATA} not found (set FORYOU_DATA)")
    log(f"QUICK={int(QUICK)} seeds={SEEDS} alphas={ALPHAS} regs={REGS} skip_ratios={SKIP_RATIOS} "
        f"skip_weights={SKIP_WEIGHTS} climb_steps={CLIMB_STEPS}; data {DATA}")
    imp = Implicit()
    datasets = {}
    fy_k = Foryou()
    datasets["kuairec"] = Dataset("KuaiRec", *load_kuairec(SEEDS), fy_k, imp)
    fy_s = Foryou()
    datasets["signed"] = Dataset("KuaiRec signed", *load_signed(SEEDS), fy_s, imp)
    version = fy_k.version

    results = {"datasets": {}}
    for key, ds in datasets.items():
        ds.register_all()  # popularity is measured before any refit
        ds.checks = cross_check(ds)

    chosen = {}
    for key, ds in datasets.items():
        chosen[key] = tune_dataset(ds, signed=(key == "signed"))

    shared_best, shared, best_val = shared_default(datasets, chosen)

    rows_order = ["popularity", "foryou binary", "foryou watch-time", "foryou watch-time + skips", "implicit ALS"]
    extra_rows = ["foryou shared default", "foryou current defaults", "implicit ALS, positives only",
                  "implicit ALS, skips as negatives", "foryou watch-time, linear/log", "popularity of positives (Python)"]
    # The skip rule ablated under the shipped defaults (same tuning, nothing searched):
    # off with `ratio` (a swipe-away gets confidence 0: dropped), and skip-blind (`linear`,
    # rule off: a swipe-away counts as a watch of confidence 1).
    ablation = {}
    if HAS_TUNE:
        ablation = {"foryou defaults, skip rule off": dict(CURRENT_DEFAULTS, skip_ratio=0.0),
                    "foryou defaults, skip-blind (linear, swipes as watches)":
                        dict(CURRENT_DEFAULTS, confidence="linear", skip_ratio=0.0)}
        extra_rows += list(ablation)
    for key, ds in datasets.items():
        rows = {}
        rows["popularity"] = {"cfg": {}, "metrics": summarize(ds.popularity())}
        rows["popularity of positives (Python)"] = {"cfg": {}, "metrics": summarize(ds.positive_popularity())}
        for row in rows_order[1:] + extra_rows[2:5]:
            engine = "implicit" if row.startswith("implicit") else "foryou"
            cfg = chosen[key][row]
            log(f"{ds.name}: test run of {row} ({describe(cfg)})")
            rows[row] = {"cfg": cfg, "validation_ndcg@10": ds.validate(engine, cfg),
                         "metrics": summarize(ds.test(engine, cfg))}
        rows["foryou shared default"] = {"cfg": shared_best["cfg"], "validation_ndcg@10": ds.validate("foryou", shared_best["cfg"]),
                                         "metrics": summarize(ds.test("foryou", shared_best["cfg"]))}
        rows["foryou current defaults"] = {"cfg": CURRENT_DEFAULTS, "validation_ndcg@10": ds.validate("foryou", CURRENT_DEFAULTS),
                                           "metrics": summarize(ds.test("foryou", CURRENT_DEFAULTS))}
        for row, cfg in ablation.items():
            rows[row] = {"cfg": cfg, "validation_ndcg@10": ds.validate("foryou", cfg),
                         "metrics": summarize(ds.test("foryou", cfg))}
        results["datasets"][key] = {
            "name": ds.name, "info": ds.info, "rows": rows, "cross_check": ds.checks,
            "validation_grid": sorted(ds.validation.values(), key=lambda v: -v["mean"]),
        }

    # Targets.
    def nd(key, row):
        return results["datasets"][key]["rows"][row]["metrics"]["ndcg@10"]

    def paired(key, a, b):
        d = np.array(nd(key, a)["per_seed"]) - np.array(nd(key, b)["per_seed"])
        return {"mean": float(d.mean()), "sd": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
                "wins": int((d > 0).sum()), "seeds": len(d)}

    def beats(key, a, b):
        fa, fb = nd(key, a), nd(key, b)
        margin = fa["mean"] - fb["mean"]
        spread = fa["sd"] + fb["sd"]
        return {"a": a, "b": b, "a_ndcg": fa["mean"], "b_ndcg": fb["mean"], "margin": margin,
                "spread": spread, "holds": bool(margin > spread), "paired": paired(key, a, b)}

    def with_users(key, t):
        """Adds the test-user interval of A − B where both rows are foryou models."""
        rows = results["datasets"][key]["rows"]
        if not t["a"].startswith("foryou") or not t["b"].startswith("foryou"):
            return t
        t["users"] = user_bootstrap(datasets[key], rows[t["a"]]["cfg"], rows[t["b"]]["cfg"])
        return t

    targets = {}
    targets["watch-time beats binary on KuaiRec by more than the seed spread"] = with_users(
        "kuairec", beats("kuairec", "foryou watch-time", "foryou binary"))
    # Skip-blind: forms where a swipe-away (ratio 0) still counts as a watch (binary,
    # linear, log); confidence=ratio gives it no weight, which is not skip-blind.
    blind = max(["foryou binary", "foryou watch-time, linear/log"],
                key=lambda r: results["datasets"]["signed"]["rows"][r]["validation_ndcg@10"])
    targets["skip-aware beats skip-blind on signed by more than the seed spread"] = with_users(
        "signed", beats("signed", "foryou watch-time + skips", blind))
    if ablation:
        targets["skip-aware beats skip-blind on signed by more than the seed spread, shipped defaults (ablation)"] = with_users(
            "signed", beats("signed", "foryou current defaults", "foryou defaults, skip-blind (linear, swipes as watches)"))
    for key, ds in datasets.items():
        results["datasets"][key]["skip_rule_at_fixed_settings"] = skip_rule_at_fixed_settings(ds) if HAS_TUNE else []
    for key in datasets:
        rows = results["datasets"][key]["rows"]
        best_fy = max(["foryou binary", "foryou watch-time", "foryou watch-time + skips"],
                      key=lambda r: rows[r]["validation_ndcg@10"])
        t = beats(key, best_fy, "implicit ALS")
        t["holds"] = bool(t["margin"] >= 0)
        targets[f"foryou best configuration >= best implicit on {datasets[key].name}"] = t
        t = beats(key, "foryou shared default", "implicit ALS")
        t["holds"] = bool(t["margin"] >= 0)
        targets[f"foryou shared default >= best implicit on {datasets[key].name}"] = t
        t = beats(key, "foryou current defaults", "implicit ALS")
        t["holds"] = bool(t["margin"] >= 0)
        targets[f"foryou defaults (as shipped) >= best implicit on {datasets[key].name}"] = t

    elapsed = time.time() - started
    results["meta"] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "make eval" + ("  (QUICK=1)" if QUICK else "") + "   # = bash eval/run.sh -> .venv-eval/bin/python eval/kuairec.py",
        "quick": QUICK,
        "machine": machine_info(),
        "build": BUILD,
        "versions": {"foryou": version, "implicit": implicit.__version__, "numpy": np.__version__,
                     "scipy": scipy.__version__},
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS",
                                                 "OPENBLAS_CORETYPE")},
        "protocol": {"seeds": SEEDS, "factors": FACTORS, "iterations": ITERATIONS, "threads": THREADS,
                     "alphas": ALPHAS, "regularizations": REGS, "skip_ratios": SKIP_RATIOS,
                     "regularization_scalings": SCALINGS,
                     "regularizations_by_scaling": {sc: REGS_BY_SCALING[sc] for sc in SCALINGS},
                     "signed_skip_ratios": SIGNED_SKIP_RATIOS, "skip_weights": SKIP_WEIGHTS,
                     "ladders": LADDERS, "climb_steps": CLIMB_STEPS,
                     "selection": "mean validation NDCG@10 over seeds",
                     "sd": "sample standard deviation over seeds (ddof=1)"},
        "runtime_seconds": round(elapsed, 1),
        "foryou_refits": fy_k.refits + fy_s.refits,
        "foryou_refit_seconds": round(fy_k.refit_seconds + fy_s.refit_seconds, 1),
        "implicit_fits": imp.fits,
        "implicit_fit_seconds": round(imp.fit_seconds, 1),
    }
    results["targets"] = targets
    results["shared_default"] = {"chosen": shared_best, "candidates": shared, "best_validation_ndcg": best_val}
    fixed = []
    for cfg in [CURRENT_DEFAULTS, shared_best["cfg"]] + [c for c in DEFAULT_CANDIDATES
                                                         if c.get("confidence") in WATCH_FORMS + ["binary"]
                                                         and c.get("regularization_scaling", "none") in SCALINGS]:
        entry = {"cfg": cfg, "current": cfg == CURRENT_DEFAULTS, "searched": cfg == shared_best["cfg"]}
        for key, ds in datasets.items():
            m = summarize(ds.test("foryou", cfg))
            entry[key] = {"validation_ndcg@10": ds.validate("foryou", cfg), "ndcg@10": m["ndcg@10"],
                          "recall@20": m["recall@20"], "coverage@10": m["coverage@10"]["mean"]}
        fixed.append(entry)
    results["default_candidates"] = fixed
    results["not_evaluated"] = ["half_life_days (recency decay): neither dataset has timestamps (ts = 0 for every event)"]

    md = render(results, rows_order, extra_rows)
    print(md)
    name = "results-quick" if QUICK else "results"
    with open(os.path.join(OUT_DIR, name + ".md"), "w") as f:
        f.write(md)
    with open(os.path.join(OUT_DIR, name + ".json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    log(f"wrote eval/{name}.md and eval/{name}.json in {elapsed:.0f}s")


def scaling_note(p):
    by = p.get("regularizations_by_scaling") or {}
    scaled = [f"{sc}: {regs}" for sc, regs in by.items() if sc != "none"]
    if not scaled:
        return ""
    return (" (regularization_scaling=none; the binary and watch-time rows also search "
            + ", ".join(f"regularization_scaling={s}" for s in scaled) + ")")


def render(results, rows_order, extra_rows):
    meta = results["meta"]
    lines = []
    lines.append(f"# foryou evaluation{' (QUICK smoke run: 1 seed, tiny grid)' if meta['quick'] else ''}")
    lines.append("")
    lines.append(f"- date: {meta['date']}")
    lines.append(f"- command: `{meta['command']}`")
    m = meta["machine"]
    lines.append(f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['platform']}, Python {m['python']}, SQLite {m['sqlite']}")
    v = meta["versions"]
    b = meta["build"]
    lines.append(f"- build: commit {b.get('git_commit')}{' + uncommitted src changes' if b.get('src_modified') else ''}, "
                 f"{b['extension']} built {b.get('extension_mtime')}")
    lines.append(f"- versions: foryou {v['foryou']}, implicit {v['implicit']}, numpy {v['numpy']}, scipy {v['scipy']}")
    p = meta["protocol"]
    lines.append(f"- protocol: factors={p['factors']}, iterations={p['iterations']}, threads={p['threads']}; "
                 f"seeds {p['seeds']}; grid alpha {p['alphas']} x regularization {p['regularizations']}"
                 f"{scaling_note(p)}; "
                 f"skip_ratio {p['skip_ratios']} (signed: {p['signed_skip_ratios']}) x skip_weight {p['skip_weights']}; "
                 f"then a hill climb of at most {p['climb_steps']} steps over the ladders {p['ladders']}; "
                 f"selection by {p['selection']}; figures are mean ± {p['sd']}")
    lines.append(f"- runtime: {meta['runtime_seconds']:.0f} s ({meta['foryou_refits']} foryou refits, "
                 f"{meta['foryou_refit_seconds']:.0f} s in refit; {meta['implicit_fits']} implicit fits, "
                 f"{meta['implicit_fit_seconds']:.0f} s in fit)")
    lines.append("")
    for key, ds in results["datasets"].items():
        info = ds["info"]
        lines.append(f"## {ds['name']}")
        lines.append("")
        lines.append(f"Data: `{info['path']}`. Events: {info['events']}. Split: {info['split']}. "
                     f"Relevant: {info['relevant_rule']}. Test users with a relevant item: "
                     f"{ds['rows']['popularity']['metrics']['users']}.")
        lines.append("")
        lines.append("| row | NDCG@10 | Recall@20 | Precision@10 | MAP@10 | coverage@10 | valid NDCG@10 | hyperparameters |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for row in rows_order + [None] + extra_rows:
            if row is None:
                lines.append("| *supplementary:* | | | | | | | |")
                continue
            r = ds["rows"][row]
            mm = r["metrics"]
            val = r.get("validation_ndcg@10")
            lines.append(f"| {row} | {fmt(mm['ndcg@10'])} | {fmt(mm['recall@20'])} | {fmt(mm['precision@10'])} | "
                         f"{fmt(mm['map@10'])} | {mm['coverage@10']['mean']:.3f} | "
                         f"{'' if val is None else f'{val:.4f}'} | {describe(r['cfg']) or POPULARITY_NOTES[row]} |")
        lines.append("")
    lines.append("## Targets (NDCG@10 on test)")
    lines.append("")
    lines.append("\"By more than the seed spread\": mean(A) − mean(B) > sd(A) + sd(B) (the mean ± sd intervals do not "
                 "overlap). \"≥\": mean(A) ≥ mean(B). Paired: per-seed difference A − B (same split and seed), mean ± sd, "
                 "and the number of seeds where A wins.")
    lines.append("")
    lines.append("Test users: per-user NDCG@10 difference A − B on the first seed's models, mean and 95% interval from "
                 "resampling the test users (2,000 resamples, fixed generator): how far the figure could move with "
                 "another sample of users, which the seed spread does not measure (foryou rows only).")
    lines.append("")
    lines.append("| target | A | B | A − B | spread | paired A − B | test users: A − B [95%] | holds |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, t in results["targets"].items():
        pr = t["paired"]
        u = t.get("users")
        users = f"{u['mean']:+.4f} [{u['ci95'][0]:+.4f}, {u['ci95'][1]:+.4f}]" if u else ""
        lines.append(f"| {name} | {t['a']} {t['a_ndcg']:.4f} | {t['b']} {t['b_ndcg']:.4f} | {t['margin']:+.4f} | "
                     f"{t['spread']:.4f} | {pr['mean']:+.4f} ± {pr['sd']:.4f} ({pr['wins']}/{pr['seeds']}) | "
                     f"{users} | {'yes' if t['holds'] else 'NO'} |")
    lines.append("")
    lines.append("## The skip rule at fixed settings (test NDCG@10)")
    lines.append("")
    lines.append("Each rung of the `tune` ladder (as the built extension reports it), nothing chosen: the shipped "
                 "defaults with `tune = false` at that rung, and three ways of feeding a swipe-away: skip-aware (the "
                 "shipped rule: preference 0, confidence 1 + skip_weight), rule off (`ratio`: confidence alpha·0, "
                 "dropped) and skip-blind (`linear`, rule off: a watch of confidence 1). Holds: skip-aware − "
                 "skip-blind > the sum of their sds.")
    lines.append("")
    lines.append("| dataset | rung | tune's hold-out NDCG, seed 0 (sweeps) | skip-aware | rule off | skip-blind | paired aware − blind | holds |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for key, ds in results["datasets"].items():
        for e in ds.get("skip_rule_at_fixed_settings", []):
            r, pr = e["rung"], e["aware_minus_blind"]
            lines.append(f"| {ds['name']} | alpha={r['alpha']:g}, regularization={r['regularization']:g} "
                         f"({r['regularization_scaling']}) | {e['holdout_ndcg_seed0']}"
                         f"{'' if e.get('holdout_sweeps') is None else ' (' + str(e['holdout_sweeps']) + ')'} | {fmt(e['skip-aware'])} | "
                         f"{fmt(e['rule off'])} | {fmt(e['skip-blind'])} | {pr['mean']:+.4f} ± {pr['sd']:.4f} "
                         f"({pr['wins']}/{pr['seeds']}) | {'yes' if e['holds'] else 'NO'} |")
    lines.append("")
    sd = results["shared_default"]
    lines.append("## Shared default candidates (validation NDCG@10, relative to each dataset's best foryou validation score)")
    lines.append("")
    ranked = sorted(sd["candidates"], key=lambda c: -c["score"])
    shown = ranked[:8] + [c for c in ranked[8:] if c["cfg"] == CURRENT_DEFAULTS]
    lines.append(f"{len(ranked)} configurations scored (candidates and hill-climb steps); the best 8 and the current defaults:")
    lines.append("")
    lines.append("| configuration | KuaiRec valid | signed valid | KuaiRec rel. | signed rel. | mean rel. |")
    lines.append("|---|---|---|---|---|---|")
    for c in shown:
        mark = " **(chosen)**" if c is sd["chosen"] or c["cfg"] == sd["chosen"]["cfg"] else ""
        cur = " (current defaults)" if c["cfg"] == CURRENT_DEFAULTS else ""
        lines.append(f"| {describe(c['cfg'])}{cur}{mark} | {c['validation_ndcg']['kuairec']:.4f} | "
                     f"{c['validation_ndcg']['signed']:.4f} | {c['relative']['kuairec']:.3f} | "
                     f"{c['relative']['signed']:.3f} | {c['score']:.3f} |")
    lines.append("")
    lines.append("## Default candidates on both datasets (test NDCG@10, Recall@20, coverage@10; validation NDCG@10)")
    lines.append("")
    lines.append("| configuration | KuaiRec NDCG@10 | KuaiRec Recall@20 | KuaiRec cov. | KuaiRec valid | signed NDCG@10 | signed Recall@20 | signed cov. | signed valid |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for c in results["default_candidates"]:
        tag = " (current defaults)" if c["current"] else (" (searched shared default)" if c["searched"] else "")
        cells = []
        for key in ("kuairec", "signed"):
            d = c[key]
            cells += [fmt(d["ndcg@10"]), fmt(d["recall@20"]), f"{d['coverage@10']:.3f}", f"{d['validation_ndcg@10']:.4f}"]
        lines.append(f"| {describe(c['cfg'])}{tag} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("## Not evaluated")
    lines.append("")
    for item in results["not_evaluated"]:
        lines.append(f"- {item}")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
