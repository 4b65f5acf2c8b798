#!/usr/bin/env python3
"""Writes README.md's figures block from bench/results.json and eval/results.json.

    python3 scripts/render_figures.py [README [OUTPUT]]    (OUTPUT "-" = stdout)

Replaces the lines between `<!-- figures:begin -->` and `<!-- figures:end -->` of README
(default README.md, rewritten in place) with a table of the headline figures of the
latest committed runs (`make bench` writes bench/results.json, `make eval`
eval/results.json). Nothing is typed by hand: re-run after a new bench or eval run
(`make reference` does). Stdlib only.
"""

import json
import os
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"


def load(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return json.load(f)


def ndcg(ev, dataset, row):
    m = ev["datasets"][dataset]["rows"][row]["metrics"]["ndcg@10"]
    return m["mean"], m["sd"]


def pm(value):
    mean, sd = value
    return f"{mean:.4f} ± {sd:.4f}"


def figures(bench, ev):
    """The Markdown lines of the figures block."""
    L = []
    seeds = len(ev["meta"]["protocol"]["seeds"])
    kr = "KuaiRec"
    sg = "KuaiRec signed"
    quick_note = []
    if ev["meta"].get("quick"):
        quick_note.append("eval/results.json is a QUICK run")
    if bench.get("quick"):
        quick_note.append("bench/results.json is a QUICK run")
    L.append(f"Ranking quality: NDCG@10 on held-out test events, mean ± sd over {seeds} seeds "
             f"([eval/results.md](eval/results.md)).")
    L.append("")
    L.append(f"| model | {kr} | {sg} |")
    L.append("|---|---|---|")
    rows = [
        ("foryou, a table created with no options", "foryou current defaults", True),
        ("`implicit` ALS, best of a grid search on validation", "implicit ALS", False),
        ("foryou, watch-time confidence, searched like `implicit`", "foryou watch-time", False),
        ("foryou, binary feedback (every view a like), searched", "foryou binary", False),
        ("popularity (the fallback: distinct viewers who watched)", "popularity", False),
    ]
    for label, row, bold in rows:
        a, b = pm(ndcg(ev, "kuairec", row)), pm(ndcg(ev, "signed", row))
        if bold:
            label, a, b = f"**{label}**", f"**{a}**", f"**{b}**"
        L.append(f"| {label} | {a} | {b} |")
    L.append("")
    ds = bench["datasets"]
    main = "ml20m" if "ml20m" in ds else "small"
    m = ds[main]
    shape = m["shape"]
    r, sv, ing = m["refit"], m["serving"], m["ingest"]
    mach = bench["machine"]
    s = bench["settings"]
    L.append(f"Speed, against `implicit` {bench['versions']['implicit']} and sqlite-vec "
             f"{bench['versions']['sqlite_vec']} on the same {mach['nproc']}-core {mach['cpu']} "
             f"({s['factors']} factors, {s['iterations']} iterations, fixed hyper-parameters; "
             f"[bench/results.md](bench/results.md)):")
    L.append("")
    L.append("| measure | foryou | other | ratio |")
    L.append("|---|---|---|---|")
    L.append(f"| refit, {shape['train_events']:,} events (`{main}` shape) vs `implicit` `fit()` | "
             f"{r['foryou']['seconds']:.2f} s | {r['implicit']['seconds']:.2f} s | "
             f"{r['ratio_time']:.2f}× |")
    L.append(f"| refit peak memory, same | {r['foryou']['peak_rss_mib']:.0f} MiB | "
             f"{r['implicit']['peak_rss_mib']:.0f} MiB | {r['ratio_peak_rss']:.2f}× |")
    L.append(f"| `recommend` p50 at {sv['items']:,} items vs `implicit` | "
             f"{sv['foryou_recommend']['p50_ms']:.3f} ms | {sv['implicit_recommend']['p50_ms']:.3f} ms | "
             f"{sv['ratio_recommend_implicit']:.2f}× |")
    L.append(f"| `similar_items` p50 at {sv['items']:,} items vs `implicit` | "
             f"{sv['foryou_similar']['p50_ms']:.3f} ms | {sv['implicit_similar']['p50_ms']:.3f} ms | "
             f"{sv['ratio_similar_implicit']:.2f}× |")
    cat = bench["catalogue"]
    if cat:
        big = cat[-1]
        f, v = big["foryou_recommend"]["p50_ms"], big["vec_knn_mips"]["p50_ms"]
        L.append(f"| `recommend` p50 at {big['items']:,} items vs sqlite-vec KNN | {f:.2f} ms | "
                 f"{v:.1f} ms | {f / v:.3f}× ({v / f:.0f}× faster) |")
        if "filters" in big:
            # One row for the three allow-lists: 100 listed ids, 10% and 90% of the items.
            f = big["filters"]
            keys = ("list-100", "share-10", "share-90")
            ours = " / ".join(f"{f[k]['foryou']['p50_ms']:.2f}" for k in keys)
            theirs = " / ".join(f"{f[k]['sqlite_vec']['p50_ms']:.1f}" for k in keys)
            ratios = " / ".join(f"{f[k]['ratio_vec']:.2f}" for k in keys)
            L.append(f"| `recommend` p50 with an allow-list of 100 ids / 10% / 90% at {big['items']:,} "
                     f"items vs sqlite-vec's filtered KNN | {ours} ms | {theirs} ms | {ratios}× |")
    L.append(f"| bulk ingest through the virtual table vs a plain table | "
             f"{ing['foryou']['events_per_s'] / 1000:,.0f}k events/s | "
             f"{ing['plain']['events_per_s'] / 1e6:,.1f}M events/s | {ing['ratio_foryou_plain']:.3f}× |")
    held = sum(1 for t in bench["targets"] if t["holds"])
    L.append("")
    missed = []
    for t in bench["targets"]:
        # The filter targets, one per share and catalogue size, are named once.
        name = ("recommend with some allow-lists <= the unfiltered call"
                if t["target"].startswith("recommend with an allow-list of") else t["target"])
        if not t["holds"] and name not in missed:
            missed.append(name)
    L.append(f"{held} of the benchmark's {len(bench['targets'])} targets hold"
             + (f"; missed: {'; '.join(missed)}." if missed else "."))
    if quick_note:
        L.append("")
        L.append(f"**Provisional: {'; '.join(quick_note)}.**")
    return [line if line.startswith("|") or not line else
            textwrap.fill(line, 100, break_long_words=False, break_on_hyphens=False)
            for line in L]


RELIABILITY = ("<!-- reliability:begin -->", "<!-- reliability:end -->")


def reliability(res):
    """The README's reliability lines, from tests/reliability/results.json."""
    fz, tt = res["fuzz"], res["torture"]
    kills = tt["kills"]
    killed = sum(k["trials"] for k in kills)
    survived = sum(k["survived"] for k in kills)
    mid = sum(k["mid_statement"] for k in kills)
    lost = sum(k["rows_lost"] for k in kills)
    load = tt["load"]
    known = ", ".join(f"{k} ({n})" for k, n in sorted(fz["known_hits"].items()) if n) or "none"
    items = [
        f"Last long run ([tests/reliability/results.md](tests/reliability/results.md), "
        f"`{res['command']}`, {res['date'][:10]}, commit {res['commit']}):",
        "",
        f"- fuzz: {fz['statements']:,} random statements over every entry point and crafted "
        f"shadow tables, {fz['batches']:,} child processes, {fz['seconds'] / 60:.0f} min: "
        f"{fz['failures']} crashes or failures; hits of the one known limitation: {known};",
        f"- kill -9 during INSERT batches, refits and automatic refits, DELETE and WAL journals: "
        f"{survived} of {killed} trials survived ({mid} killed mid-statement), "
        f"{lost} committed rows lost;",
        f"- concurrent WAL load, {load['seconds']:.0f} s: {load['inserted']:,} inserts, "
        f"{load['reads']:,} reads ({load['checked']:,} checked against the model version they "
        f"read: no mixed model), {load['refits']} refits, {tt['failures']} failures.",
    ]
    lines = []
    for item in items:
        bullet = item.startswith("- ")
        lines += textwrap.wrap(item, width=92, subsequent_indent="  " if bullet else "",
                               break_on_hyphens=False) or [""]
    return lines


def replace_block(lines, markers, block, src):
    begin, end = markers
    try:
        b, e = lines.index(begin), lines.index(end)
    except ValueError:
        print(f"render_figures: {src} has no {begin} ... {end} block", file=sys.stderr)
        return None
    if e < b:
        print(f"render_figures: {src}: {end} before {begin}", file=sys.stderr)
        return None
    return lines[:b + 1] + block + lines[e:]


def main(argv):
    src = argv[1] if len(argv) > 1 else os.path.join(ROOT, "README.md")
    dst = argv[2] if len(argv) > 2 else src
    with open(src, encoding="utf-8") as f:
        lines = f.read().split("\n")
    lines = replace_block(lines, (BEGIN, END),
                          figures(load("bench/results.json"), load("eval/results.json")), src)
    if lines is None:
        return 1
    if RELIABILITY[0] in lines:
        lines = replace_block(lines, RELIABILITY,
                              reliability(load("tests/reliability/results.json")), src)
        if lines is None:
            return 1
    text = "\n".join(lines)
    if dst == "-":
        sys.stdout.write(text)
    else:
        with open(dst, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
