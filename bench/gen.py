"""Deterministic synthetic watch events for the foryou benchmark.

`generate(shape, seed)` returns a dict of numpy arrays, one entry per event, sorted by
time: user (int64), item (int64), watch_time (float64, s), duration (float64, s), ts
(int64, Unix s), liked (bool, the hidden truth, for the held-out relevance).

The model behind the events (same seed, same events, on any machine with the same numpy):

- Hidden tastes of rank 16: each item belongs to one of 64 genres; its taste vector is
  the genre's centroid plus noise; each user has a taste vector.
- Zipf-like item popularity (weight 1 / rank^0.9, ranks shuffled over items); heavy-tailed
  user activity (log-normal, sigma 1; every user gets at least min(5, events/users)).
- Exposure, like a feed: 70% of the events come from a genre drawn from the user's
  softmax genre preference, the item then by popularity within the genre; 30% from the
  whole catalogue by popularity.
- Liked with probability sigmoid(2.5 * taste(user, item) - 1.0). A liked video is
  finished or replayed (watch ratio uniform 0.7-2.0); otherwise it is mostly swiped away
  (85%: ratio 0.02-0.3; 15%: 0.3-0.7). Durations are per item, 5-60 s.
- Timestamps uniform over 90 days; the held-out split is the last 20% of time.
- `cover_items`: one extra event per item (by a random user), so that every item of the
  catalogue gets factors after a refit (used by the serving catalogue sweep).
"""

import numpy as np

RANK = 16
GENRES = 64
T0 = 1_700_000_000
SPAN = 90 * 86_400
CHUNK = 1 << 20

# name -> (users, items, events)
SHAPES = {
    "small": (6_000, 3_700, 1_000_000),
    "ml20m": (138_000, 27_000, 20_000_000),
    # refit sweep: the catalogue and events per user of `small` (quick) or `ml20m` (full)
    # held fixed, users growing with events, so that pairs grow with events too
    "sweep-250k": (1_500, 3_700, 250_000),
    "sweep-500k": (3_000, 3_700, 500_000),
    "sweep-1m": (6_900, 27_000, 1_000_000),
    "sweep-5m": (34_500, 27_000, 5_000_000),
    # serving catalogue sweep: every item gets factors (cover_items)
    "cat-10k": (20_000, 10_000, 400_000),
    "cat-100k": (50_000, 100_000, 1_000_000),
    "cat-1m": (100_000, 1_000_000, 3_000_000),
}

GENERATOR_VERSION = 1


def _zipf_weights(rng, n, a):
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** a
    rng.shuffle(w)
    return w


def generate(shape, seed=0, cover_items=None):
    n_users, n_items, n_events = SHAPES[shape] if isinstance(shape, str) else shape
    if cover_items is None:
        cover_items = isinstance(shape, str) and shape.startswith("cat-")
    rng = np.random.Generator(np.random.PCG64(seed))

    # hidden tastes
    centroids = rng.standard_normal((GENRES, RANK)).astype(np.float32)
    genre = rng.integers(0, GENRES, n_items)
    item_vec = centroids[genre] + 0.6 * rng.standard_normal((n_items, RANK)).astype(np.float32)
    item_vec /= np.sqrt(RANK)
    user_vec = rng.standard_normal((n_users, RANK)).astype(np.float32) / np.sqrt(RANK)
    duration = np.round(rng.uniform(5.0, 60.0, n_items), 1)

    # popularity: global CDF, and per-genre CDFs packed as genre + cumulative share
    pop = _zipf_weights(rng, n_items, 0.9)
    global_cdf = np.cumsum(pop)
    global_cdf /= global_cdf[-1]
    order = np.argsort(genre, kind="stable")
    g_sorted = genre[order]
    p_sorted = pop[order]
    packed = np.empty(n_items, dtype=np.float64)
    for g in range(GENRES):
        lo, hi = np.searchsorted(g_sorted, [g, g + 1])
        if hi > lo:
            c = np.cumsum(p_sorted[lo:hi])
            packed[lo:hi] = g + c / c[-1]
    present = np.bincount(genre, minlength=GENRES) > 0

    # user genre preference (softmax over genres the catalogue has)
    logits = 3.0 * (user_vec @ centroids.T)
    logits[:, ~present] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    pref = np.exp(logits)
    pref /= pref.sum(axis=1, keepdims=True)
    pref_cdf = np.cumsum(pref, axis=1).astype(np.float32)
    pref_cdf[:, -1] = 2.0  # guard against rounding

    # activity
    min_events = max(1, min(5, n_events // n_users))
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = min_events + rng.multinomial(n_events - min_events * n_users, activity / activity.sum())
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    rng.shuffle(users)

    items = np.empty(n_events, dtype=np.int64)
    for lo in range(0, n_events, CHUNK):
        u = users[lo:lo + CHUNK]
        n = len(u)
        from_genre = rng.random(n) < 0.7
        r = rng.random(n).astype(np.float32)
        g = (pref_cdf[u] < r[:, None]).sum(axis=1)
        x = g + rng.random(n) * (1 - 1e-12)
        by_genre = order[np.minimum(np.searchsorted(packed, x, side="right"), n_items - 1)]
        by_pop = np.minimum(np.searchsorted(global_cdf, rng.random(n), side="right"), n_items - 1)
        items[lo:lo + CHUNK] = np.where(from_genre, by_genre, by_pop)

    if cover_items:
        extra_u = rng.integers(0, n_users, n_items)
        users = np.concatenate([users, extra_u])
        items = np.concatenate([items, np.arange(n_items, dtype=np.int64)])
    n_total = len(users)

    liked = np.empty(n_total, dtype=bool)
    for lo in range(0, n_total, CHUNK):
        u, i = users[lo:lo + CHUNK], items[lo:lo + CHUNK]
        taste = np.einsum("ij,ij->i", user_vec[u], item_vec[i])
        p = 1.0 / (1.0 + np.exp(-(2.5 * taste - 1.0)))
        liked[lo:lo + CHUNK] = rng.random(len(u)) < p
    swipe = rng.random(n_total) < 0.85
    ratio = np.where(liked, rng.uniform(0.7, 2.0, n_total),
                     np.where(swipe, rng.uniform(0.02, 0.3, n_total), rng.uniform(0.3, 0.7, n_total)))
    dur = duration[items]
    watch = np.round(ratio * dur, 2)
    ts = T0 + rng.integers(0, SPAN, n_total)
    perm = np.argsort(ts, kind="stable")
    return {
        "user": users[perm] + 1,  # ids start at 1
        "item": items[perm] + 1,
        "watch_time": watch[perm],
        "duration": dur[perm],
        "ts": ts[perm].astype(np.int64),
        "liked": liked[perm],
    }


def read_kuairec(path):
    """KuaiRec small-matrix sample: `user,video,watch_ratio` rows, no durations or times.
    Durations are set to 10 s (watch_time = 10 * ratio) and timestamps to the row order,
    so the ratio is exact; the held-out split is random (seeded) instead of by time."""
    raw = np.loadtxt(path, delimiter=",", dtype=np.float64)
    n = len(raw)
    rng = np.random.Generator(np.random.PCG64(12345))
    ts = T0 + rng.permutation(n).astype(np.int64)  # random order = random 80/20 split by "time"
    perm = np.argsort(ts, kind="stable")
    ratio = raw[:, 2]
    return {
        "user": raw[perm, 0].astype(np.int64),
        "item": raw[perm, 1].astype(np.int64),
        "watch_time": 10.0 * ratio[perm],
        "duration": np.full(n, 10.0),
        "ts": ts[perm],
        "liked": ratio[perm] >= 2.0,  # the threshold the KuaiRec papers use for "positive"
    }
