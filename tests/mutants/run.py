#!/usr/bin/env python3
"""make mutants: hand mutations of the model and serving code, each applied to a scratch copy
of the repository, built (profile `mutants`: release code without LTO, with the test-hooks
feature so that tests/tests/hooks.rs runs too) and run against the checks of `make test` that
should catch it. Writes tests/mutants/results.md (killed / survived, with the explanation
of every survivor from EXPLAINED below).

    python3 tests/mutants/run.py [NAME ...]     (default: every mutant)

Each mutant is one textual replacement, which must match exactly once (a mutant whose text
no longer matches is reported as "stale", and the run fails: update it). The integration test
binaries are those of `make integration` (built once, here, in the release profile); they
load the mutant's .so through FORYOU_EXT.
"""

import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRATCH = "/tmp/foryou-mutants"
TARGET = os.path.join(ROOT, "target")
SO = os.path.join(TARGET, "mutants", "libforyou")

# Checks: "integration" = every rusqlite integration test (the hooks build doubles as the
# release one, so the two tests that insist the release .so has no hook are skipped);
# "golden", "docs" = the sqlite3-shell golden tests and docs-check; "kernels" = make kernels'
# forced-level comparison of sql/kernels.sql.
MUTANTS = [
    # name, file, old, new, checks
    ("skip-ratio-le", "src/model/feedback.rs",
     "(self.skip_ratio > 0.0 && ratio < self.skip_ratio)",
     "(self.skip_ratio > 0.0 && ratio <= self.skip_ratio)", ["integration"]),
    ("skip-seconds-off", "src/model/feedback.rs",
     "|| (self.skip_seconds > 0.0 && watch_time < self.skip_seconds.min(duration))",
     "|| false", ["integration"]),
    ("skip-seconds-no-min", "src/model/feedback.rs",
     "watch_time < self.skip_seconds.min(duration))",
     "watch_time < self.skip_seconds)", ["integration"]),
    ("skip-seconds-le", "src/model/feedback.rs",
     "watch_time < self.skip_seconds.min(duration))",
     "watch_time <= self.skip_seconds.min(duration))", ["integration"]),
    ("live-popularity-no-skip-rule", "src/engine/cache.rs",
     "if feedback.is_skip(watch_time, duration) || last_view == Some((item, user)) {",
     "if last_view == Some((item, user)) {", ["integration"]),
    ("live-popularity-repeat-viewers", "src/engine/cache.rs",
     "if feedback.is_skip(watch_time, duration) || last_view == Some((item, user)) {",
     "if feedback.is_skip(watch_time, duration) {", ["integration"]),
    ("explore-picks-watched", "src/engine/serving.rs",
     ".filter(|id| !kept.contains(id) && filter.admits(**id))",
     ".filter(|id| !kept.contains(id))", ["integration"]),
    ("explore-same-for-every-user", "src/engine/serving.rs",
     "mix64(seed ^ mix64(user_id.cast_unsigned() ^ mix64(self.version.cast_unsigned())));",
     "mix64(seed ^ mix64(mix64(self.version.cast_unsigned())));", ["integration"]),
    ("explore-slots-floor", "src/engine/feed.rs",
     "let slots = (k as f64 * explore).round();",
     "let slots = (k as f64 * explore).floor();", ["integration"]),
    ("popularity-serves-watched", "src/engine/feed.rs",
     ".filter(|(id, _)| filter.admits(*id))",
     ".filter(|_| true)", ["integration"]),
    ("watched-filter-off-by-one", "src/engine/feed.rs",
     "exclude = seen.iter().map(|&(_, item)| item).collect();",
     "exclude = seen.iter().skip(1).map(|&(_, item)| item).collect();", ["integration"]),
    ("watched-dedup-off", "src/engine/feed.rs",
     "exclude.dedup(); // events come in item order",
     "// (dedup removed)", ["integration"]),
    # Candidate filters (issue 13): the allow-list and the block-list inside the scan.
    ("allow-list-ignored-by-the-scan", "src/model/topk.rs",
     "            && self.allow.is_none_or(|a| a.binary_search(&i).is_ok())",
     "", ["integration"]),
    ("listed-rows-keep-excluded", "src/model/topk.rs",
     "                .filter(|i| self.exclude.binary_search(i).is_err())",
     "", ["integration"]),
    ("in-list-taken-as-one-value", "src/sql/table_function.rs",
     "                idx_num |= whole_list_bit(j);",
     "", ["integration"]),
    ("block-list-ignored", "src/engine/feed.rs",
     "        exclude = merge_sorted(&exclude, &blocked);",
     "        let _ = blocked;", ["integration"]),
    ("int8-bound-zero", "src/model/scan.rs",
     "let c_l1 = 2.0 * h * t;",
     "let c_l1 = 0.0 * h * t; let c_scale = 0.0 * c_scale;", ["integration"]),
    ("ndcg-ideal-k", "src/model/metrics.rs",
     "let ideal = k.min(relevant.len());",
     "let ideal = k;", ["integration"]),
    ("precision-over-list", "src/model/metrics.rs",
     "self.sums.precision += hits as f64 / k as f64;",
     "self.sums.precision += hits as f64 / ranked.len().max(1) as f64;", ["integration"]),
    ("coverage-over-users", "src/model/metrics.rs",
     "self.recommended.len() as f64 / catalogue as f64",
     "self.recommended.len() as f64 / (catalogue + 1) as f64", ["integration"]),
    ("evaluate-k-error-names-recommend", "src/sql/evaluate.rs",
     "let k = args::k(WHO, ctx.get(2)?)?;",
     "let k = args::k(\"recommend\", ctx.get(2)?)?;", ["integration"]),
    ("auto-refit-divergence-fails-insert", "src/engine/refit.rs",
     "Err(Error::Diverged { .. } | Error::OutOfMemory { .. }) => Ok(()),",
     "Err(Error::OutOfMemory { .. }) => Ok(()),", ["integration"]),
    ("incremental-factor-mismatch-unchecked", "src/engine/refit.rs",
     "if previous.items.dim != options.factors {",
     "if previous.items.dim != options.factors && false {", ["integration"]),
    ("mode-error-text", "src/sql/refit.rs",
     "expected: \"expects \\\"full\\\" or \\\"incremental\\\"\".to_string(),",
     "expected: \"expects \\\"full\\\"\".to_string(),", ["integration"]),
    ("panic-guard-message", "src/error.rs",
     "\"{who}: internal error ({detail}); nothing was changed by this call\"",
     "\"{who}: internal error ({detail})\"", ["integration"]),
    ("kernels-env-ignored", "src/model/kernels.rs",
     "Ok(\"scalar\") => Level::Scalar,",
     "Ok(\"scalar\") => best,", ["kernels"]),
    ("scalar-dot-unfused", "src/model/kernels.rs",
     "s[l] = x.mul_add(*y, s[l]);",
     "s[l] = x * *y + s[l];", ["kernels"]),
    ("event-ratio-uncapped", "src/model/feedback.rs",
     "(watch_time / duration).clamp(0.0, MAX_EVENT_RATIO)",
     "(watch_time / duration).max(0.0)", ["integration", "golden"]),
    ("recency-off", "src/model/feedback.rs",
     "0.5f64.powf(age_seconds.max(0.0) / (self.half_life_days * 86_400.0))",
     "1.0", ["integration"]),
]

# Why a survivor survives (or what would kill it). A survivor without an entry fails the run.
EXPLAINED = {
    "event-ratio-uncapped": "equivalent without recency decay: a pair's summed ratio is capped at "
    "MAX_PAIR_RATIO = 10 too, so one looping event gives 10 either way; the per-event cap "
    "matters only when an old looping event is down-weighted by half_life_days (w * 50 vs "
    "w * 10) or sits beside other events of the pair. Caught by the unit test "
    "feedback::tests (event_ratio(1e9, 1) == MAX_EVENT_RATIO), not at the SQL level.",
    "watched-dedup-off": "equivalent: the watched list is only searched (binary_search on a "
    "sorted list finds an item whether or not it appears twice); the dedup saves memory and "
    "time for users who watched an item many times, which no test measures.",
}


def run(cmd, env=None, cwd=None, timeout=900):
    t = time.time()
    try:
        p = subprocess.run(cmd, shell=True, cwd=cwd or ROOT, env=env, timeout=timeout,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return p.returncode, p.stdout, time.time() - t
    except subprocess.TimeoutExpired as e:
        return 124, str(e), time.time() - t


def checks_env():
    env = dict(os.environ)
    env["FORYOU_EXT"] = SO
    env["FORYOU_HOOKS_EXT"] = SO
    env.pop("FORYOU_SKIPPED", None)
    return env


def check(name):
    env = checks_env()
    if name == "integration":
        return run("cargo test --release -q -p foryou-tests --tests -- "
                   "--skip the_release_build_has_no_test_hook "
                   "--skip loading_adds_exactly_the_documented_functions", env=env)
    if name == "golden":
        return run("bash sql/run-golden.sh", env=env)
    if name == "docs":
        return run(f"tmp=$(mktemp -d) && python3 scripts/render_reference.py docs/reference.in.md $tmp/r.md"
                   f" && diff -q docs/reference.md $tmp/r.md", env=env)
    if name == "kernels":
        return run("sqlite3 -batch -cmd '.load {0}' :memory: < sql/kernels.sql > /tmp/foryou-mutants-k0.out 2>&1; "
                   "for l in scalar avx2; do "
                   "got=$(FORYOU_KERNELS=$l sqlite3 -batch -cmd '.load {0}' :memory: 'SELECT foryou_debug()' | sed -n 's/^simd: //p'); "
                   "[ \"$got\" = $l ] || {{ echo \"FORYOU_KERNELS=$l ran at $got\"; exit 1; }}; "
                   "FORYOU_KERNELS=$l sqlite3 -batch -cmd '.load {0}' :memory: < sql/kernels.sql > /tmp/foryou-mutants-k1.out 2>&1; "
                   "cmp -s /tmp/foryou-mutants-k0.out /tmp/foryou-mutants-k1.out || {{ echo \"differs at $l\"; exit 1; }}; "
                   "done".format(SO), env=env)
    raise ValueError(name)


def build():
    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = TARGET
    return run("cargo build -q --profile mutants -p foryou --features test-hooks", env=env, cwd=SCRATCH)


def fresh_scratch():
    if os.path.exists(SCRATCH):
        shutil.rmtree(SCRATCH)
    shutil.copytree(ROOT, SCRATCH, ignore=shutil.ignore_patterns("target", ".git", "*.db"))


def main(argv):
    chosen = [m for m in MUTANTS if not argv or m[0] in argv]
    started = time.time()
    # The integration test binaries (release, as make integration builds them).
    code, out, _ = run("cargo test --release -q -p foryou-tests --no-run")
    if code:
        print(out)
        return 1
    fresh_scratch()
    code, out, _ = build()
    if code:
        print(out)
        return 1
    # The unmutated build must pass every check a mutant is run against.
    for name in sorted({c for m in chosen for c in m[4]}):
        code, out, secs = check(name)
        if code:
            print(f"mutants: the unmutated build fails {name}:\n{out[-3000:]}")
            return 1
        print(f"mutants: baseline {name}: ok ({secs:.0f} s)", flush=True)
    results = []
    for name, path, old, new, checks in chosen:
        src = os.path.join(SCRATCH, path)
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            text = f.read()
        if text.count(old) != 1:
            results.append((name, path, "stale", f"{text.count(old)} matches", 0))
            print(f"mutants: {name}: STALE ({text.count(old)} matches)", flush=True)
            continue
        with open(src, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))
        t = time.time()
        code, out, _ = build()
        if code:
            status, by = "killed", "does not compile"
        else:
            status, by = "survived", ""
            for c in checks:
                code, out, _ = check(c)
                if code:
                    failed = [l.split()[1] for l in out.splitlines() if l.startswith("test ") and l.endswith("FAILED")]
                    status, by = "killed", c + (f" ({', '.join(sorted(set(failed))[:4])})" if failed else "")
                    break
        with open(src, "w", encoding="utf-8") as f:
            f.write(text)
        secs = time.time() - t
        results.append((name, path, status, by, secs))
        print(f"mutants: {name}: {status} {by} ({secs:.0f} s)", flush=True)
        write(results, time.time() - started, len(chosen))  # as it goes: a partial run shows
    build()  # leave the scratch build unmutated
    write(results, time.time() - started, len(chosen))
    bad = [r for r in results if r[2] == "stale" or (r[2] == "survived" and r[0] not in EXPLAINED)]
    return 1 if bad else 0


def write(results, total, planned):
    by_name = {m[0]: m for m in MUTANTS}
    killed = sum(r[2] == "killed" for r in results)
    survived = [r for r in results if r[2] == "survived"]
    commit = subprocess.run("git rev-parse --short HEAD", shell=True, cwd=ROOT,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    L = ["# Hand mutations: results", "",
         f"Generated by `make mutants` (tests/mutants/run.py) at commit {commit} (plus the working tree), "
         + ("" if len(results) == planned else f"PARTIAL ({len(results)} of {planned} run so far), ")
         + f"{len(results)} mutants in {total / 60:.1f} min: **{killed} killed, {len(survived)} survived**"
         + (f", {sum(r[2] == 'stale' for r in results)} stale" if any(r[2] == "stale" for r in results) else "") + ".",
         "", "Each mutant is one replacement in the source, built and run against the checks of "
         "`make test` listed (integration = every rusqlite integration test, the hooks included; "
         "docs = docs-check; golden = the sqlite3-shell golden tests; kernels = the forced-level "
         "comparison of `make kernels`). \"killed by\" names the first check that failed and its failing tests.",
         "", "| mutant | file | change | result | killed by |", "|---|---|---|---|---|"]
    for name, path, status, by, secs in results:
        _, _, old, new, _ = by_name[name]
        cell = lambda s: s.replace("|", "\\|").replace("\n", " ")
        L.append(f"| `{name}` | `{path}` | `{cell(old)}` → `{cell(new)}` | {status} | {cell(by)} |")
    L += ["", "## Survivors", ""]
    if not survived:
        L.append("None.")
    for name, *_ in survived:
        L.append(f"- `{name}`: {EXPLAINED.get(name, 'NOT EXPLAINED: add a test or an explanation')}")
    out = os.environ.get("MUTANTS_RESULTS", os.path.join(ROOT, "tests", "mutants", "results.md"))
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
