#!/usr/bin/env python3
"""Runs the long reliability suite and writes its results file.

Usage: reliability_results.py FUZZ_SECONDS TORTURE_TRIALS TORTURE_SECONDS SEED

Runs target/release/fuzz and target/release/torture (built by `make reliability-long`)
against $FORYOU_EXT, echoes their output, and writes tests/reliability/results.json and
tests/reliability/results.md from their summary lines. README.md's reliability figures
are rendered from results.json by scripts/render_figures.py. Exits non-zero when either
run fails. Standard library only.
"""

import datetime
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "reliability")


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="backslashreplace")
    sys.stdout.write(proc.stdout)
    return proc.returncode, proc.stdout


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_fuzz(text):
    m = re.search(r"fuzz summary: seed (\d+), (\d+) statements in (\d+) batches, (\d+) errors "
                  r"returned, (\d+) interrupted, (\d+) failures, (\d+) known, ([\d.]+) s", text)
    if not m:
        return None
    keys = ["seed", "statements", "batches", "errors", "interrupted", "failures", "known"]
    out = {k: int(v) for k, v in zip(keys, m.groups()[:7])}
    out["seconds"] = float(m.group(8))
    out["known_hits"] = {k: int(n) for k, n in re.findall(r"^  (\S+)\s+(\d+) hit\(s\)", text, re.M)}
    return out


def parse_torture(text):
    m = re.search(r"torture summary: seed (\d+), (\d+) failures, (\d+) known, ([\d.]+) s", text)
    if not m:
        return None
    kills = []
    for kind, mode, survived, trials, mid, lost in re.findall(
            r"kill -9 (\w+)\s+(\w+)\s*: (\d+)/(\d+) trials survived \((\d+) killed "
            r"mid-statement\), (\d+) committed rows lost", text):
        kills.append({"kind": kind, "mode": mode, "survived": int(survived),
                      "trials": int(trials), "mid_statement": int(mid), "rows_lost": int(lost)})
    load = re.search(r"concurrent WAL load, ([\d.]+) s: (\d+) events inserted, (\d+) reads "
                     r"\((\d+) checked[^)]*\), (\d+) refits, (\d+) BUSY", text)
    return {
        "seed": int(m.group(1)), "failures": int(m.group(2)), "known": int(m.group(3)),
        "seconds": float(m.group(4)), "kills": kills,
        "load": None if not load else {
            "seconds": float(load.group(1)), "inserted": int(load.group(2)),
            "reads": int(load.group(3)), "checked": int(load.group(4)),
            "refits": int(load.group(5)), "busy": int(load.group(6)),
        },
    }


def main(argv):
    fuzz_seconds, trials, torture_seconds, seed = argv[1:5]
    ext = os.environ.get("FORYOU_EXT", os.path.join(ROOT, "target/release/libforyou"))
    os.environ["FORYOU_EXT"] = ext
    fuzz_cmd = ["target/release/fuzz", "--seconds", fuzz_seconds, "--seed", seed]
    torture_cmd = ["target/release/torture", "--trials", trials, "--seconds", torture_seconds,
                   "--seed", seed]
    fuzz_rc, fuzz_out = run(fuzz_cmd)
    torture_rc, torture_out = run(torture_cmd)
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "command": f"make reliability-long FUZZ_SECONDS={fuzz_seconds} "
                   f"TORTURE_TRIALS={trials} TORTURE_SECONDS={torture_seconds} RELIABILITY_SEED={seed}",
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "fuzz": parse_fuzz(fuzz_out),
        "torture": parse_torture(torture_out),
        "passed": fuzz_rc == 0 and torture_rc == 0,
    }
    with open(os.path.join(OUT, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    fz, tt = results["fuzz"] or {}, results["torture"] or {}
    lines = [
        "# foryou reliability: last long run",
        "",
        f"- date: {results['date']}; commit {commit}; machine: {results['machine']}",
        f"- command: `{results['command']}`",
        f"- result: {'passed' if results['passed'] else 'FAILED'}",
        "",
        "## Fuzz",
        "",
        f"{fz.get('statements', 0):,} random statements in {fz.get('batches', 0):,} batches "
        f"(each batch in a child process, seed {fz.get('seed')}), {fz.get('seconds', 0):.0f} s: "
        f"{fz.get('errors', 0):,} returned an error, {fz.get('interrupted', 0)} were interrupted, "
        f"{fz.get('failures', 0)} failures, {fz.get('known', 0)} hits of known findings.",
        "",
        "| known finding | hits |",
        "|---|---|",
    ]
    lines += [f"| {k} | {n} |" for k, n in sorted(fz.get("known_hits", {}).items())]
    lines += ["", "## Torture", "", "| kill -9 during | journal | survived | killed mid-statement | committed rows lost |",
              "|---|---|---|---|---|"]
    lines += [f"| {k['kind']} | {k['mode']} | {k['survived']}/{k['trials']} | {k['mid_statement']} | "
              f"{k['rows_lost']} |" for k in tt.get("kills", [])]
    load = tt.get("load")
    if load:
        lines += ["", f"Concurrent WAL load, {load['seconds']:.0f} s: {load['inserted']:,} events "
                  f"inserted, {load['reads']:,} reads ({load['checked']:,} checked against the "
                  f"factors of the model version they read), {load['refits']} refits, "
                  f"{load['busy']} BUSY; {tt.get('failures', 0)} failures."]
    with open(os.path.join(OUT, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote tests/reliability/results.json and results.md ({'passed' if results['passed'] else 'FAILED'})")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
