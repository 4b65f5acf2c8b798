"""One refit or fit in its own process, so that its peak RSS can be read by the parent
(os.wait4 on this process). Prints one JSON line on stdout.

  worker.py foryou <db> <extension> <options_json>
      SELECT foryou_refit('feed', options_json) on the database; times the statement.
  worker.py implicit <matrix.npz> <iterations> <factors_out.npz or ->
      implicit's AlternatingLeastSquares.fit() on the CSR matrix (loaded before the clock
      starts: implicit is given its matrix already in memory).
"""

import json
import sys
import time


def rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def foryou(db, ext, options_json):
    import sqlite3

    con = sqlite3.connect(db)
    con.enable_load_extension(True)
    con.load_extension(ext)
    before = rss_kb("VmRSS")
    started = time.perf_counter()
    report = con.execute("SELECT foryou_refit('feed', ?)", (options_json,)).fetchone()[0]
    seconds = time.perf_counter() - started
    con.close()
    return {"seconds": seconds, "report": json.loads(report), "rss_before_kb": before, "hwm_kb": rss_kb("VmHWM")}


def implicit_fit(matrix_path, iterations, out):
    import numpy as np
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits
    from implicit.cpu.als import AlternatingLeastSquares

    from settings import ALPHA, FACTORS, REGULARIZATION, SEED, THREADS

    matrix = sp.load_npz(matrix_path).tocsr().astype(np.float32)
    model = AlternatingLeastSquares(factors=FACTORS, regularization=REGULARIZATION, alpha=ALPHA,
                                    iterations=iterations, use_cg=True, calculate_training_loss=False,
                                    num_threads=THREADS, random_state=SEED)
    with threadpool_limits(limits=1, user_api="blas"):
        before = rss_kb("VmRSS")
        started = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - started
    if out != "-":
        np.savez(out, user_factors=model.user_factors, item_factors=model.item_factors)
    return {"seconds": seconds, "rss_before_kb": before, "hwm_kb": rss_kb("VmHWM")}


def main():
    kind = sys.argv[1]
    if kind == "foryou":
        result = foryou(sys.argv[2], sys.argv[3], sys.argv[4])
    elif kind == "implicit":
        result = implicit_fit(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        raise SystemExit(f"worker.py: unknown kind {kind!r}")
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
