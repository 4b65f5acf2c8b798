"""How far personal models get on KuaiRec signed, next to popularity (numpy + implicit).

The question behind it: on the signed log every tuned ALS model (foryou's and implicit's)
ends near popularity, where skip-aware and skip-blind training tie. Is there personal
signal a better use of the swipe-aways could reach? This scores, on the given
train/valid/test files with the protocol of eval/kuairec.py (relevant = label 1 rows,
every video without a training row ranked, NDCG@10 over users with a relevant row):

- item-level rankings: full watches per video (popularity of positives), rows per video
  (how often it was shown), shown × smoothed like rate;
- user-kNN over positives, over signed rows (swipes negative) and skip-blind rows;
- implicit ALS, skip-aware (swipes as negatives) and skip-blind (swipes as weak
  watches), with a popularity term of growing weight added to the standardised score.

Run: .venv-eval/bin/python eval/signed_ceiling.py   (under a minute on 2 cores; one
seed, so read differences below ~0.003 as noise: see the test-user intervals of
eval/results.md).
"""

import os
import sys

import numpy as np
import scipy.sparse as sp
import threadpoolctl
from implicit.cpu.als import AlternatingLeastSquares

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kuairec  # noqa: E402  (the metrics of the eval, beside this file)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("FORYOU_DATA") or os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
FOLDER = os.path.join(DATA, "kuairec-sigformer-signed")
K = 10


def read(name):
    raw = np.loadtxt(os.path.join(FOLDER, name + ".txt"))
    return raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64), raw[:, 2] > 0.5


def main():
    threadpoolctl.threadpool_limits(1, "blas")
    tu, ti, tl = read("train")
    n_users, n_items = int(tu.max()) + 1, int(ti.max()) + 1
    seen = np.zeros((n_users, n_items), bool)
    seen[tu, ti] = True

    def relevant(name):
        u, i, label = read(name)
        rel = np.zeros((n_users, n_items), bool)
        rel[u[label], i[label]] = True
        return rel

    splits = {"valid": relevant("valid"), "test": relevant("test")}

    relevant_sets = {name: {int(u): set(np.flatnonzero(row).tolist()) for u, row in enumerate(rel) if row.any()}
                     for name, rel in splits.items()}

    def ndcg(scores, name):
        """Mean NDCG@10 over users with a relevant item (eval/kuairec.py's metrics, those
        of foryou_evaluate): every video without a training row ranked, ties by index."""
        users = sorted(relevant_sets[name])
        s = np.where(seen[users], -np.inf, np.broadcast_to(scores, seen.shape)[users])
        top = np.argsort(-s, axis=1, kind="stable")[:, :K]
        ranked = {u: [i for i in row.tolist() if not seen[u, i]] for u, row in zip(users, top)}
        return kuairec.ranking_metrics(ranked, relevant_sets[name], K, n_items)["ndcg"]

    def show(label, scores):
        print(f"{label:<58} valid {ndcg(scores, 'valid'):.4f}  test {ndcg(scores, 'test'):.4f}",
              flush=True)

    watched = np.bincount(ti, weights=tl, minlength=n_items)
    shown = np.bincount(ti, minlength=n_items).astype(np.float64)
    show("popularity of positives (full watches per video)", watched[None, :])
    show("rows per video (how often it was shown)", shown[None, :])
    rate = (watched + tl.mean()) / (shown + 1.0)
    show("shown x like rate (one prior row)", (shown * rate)[None, :])
    print(f"correlation of rows per video (train) with full watches (test): "
          f"{np.corrcoef(shown, splits['test'].sum(axis=0))[0, 1]:+.3f}")

    positive = np.zeros((n_users, n_items))
    positive[tu[tl], ti[tl]] = 1.0
    swiped = np.zeros((n_users, n_items))
    swiped[tu[~tl], ti[~tl]] = 1.0
    for name, rows in (("positives", positive), ("signed (swipes -1)", positive - swiped),
                       ("skip-blind (swipes +1)", positive + swiped)):
        unit = rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-9)
        sim = unit @ unit.T
        np.fill_diagonal(sim, 0.0)
        for neighbours in (50, 200):
            keep = np.argpartition(-sim, neighbours, axis=1)[:, :neighbours]
            weights = np.zeros_like(sim)
            np.put_along_axis(weights, keep, np.maximum(np.take_along_axis(sim, keep, 1), 0.0), 1)
            show(f"user-kNN {name}, {neighbours} neighbours", weights @ positive)

    log_watched = np.log1p(watched)
    log_watched = (log_watched - log_watched.mean()) / log_watched.std()
    for regularization in (1.0, 100.0):
        for name, values in (("skip-aware", np.where(tl, 10.0, -2.0)), ("skip-blind", np.where(tl, 11.0, 1.0))):
            model = AlternatingLeastSquares(factors=64, regularization=regularization, iterations=15,
                                            random_state=0, num_threads=2, calculate_training_loss=False)
            model.fit(sp.csr_matrix((values, (tu, ti)), shape=(n_users, n_items)).astype(np.float32),
                      show_progress=False)
            scores = np.asarray(model.user_factors) @ np.asarray(model.item_factors).T
            scores /= scores.std()
            for beta in (0.0, 1.0, 4.0):
                show(f"implicit ALS {name}, lambda {regularization:g}, + {beta:g} x popularity",
                     scores + beta * log_watched[None, :])


if __name__ == "__main__":
    if not os.path.isdir(FOLDER):
        sys.exit(f"signed_ceiling: {FOLDER} not found (set FORYOU_DATA)")
    main()
