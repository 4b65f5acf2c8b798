# foryou: make loadable | test | lint | demo | eval | bench | reference | dist | clean
CARGO ?= cargo
PYTHON ?= python3
# The extension the docs are rendered with (a path without .so, as .load takes it).
FORYOU_EXT ?= $(CURDIR)/target/release/libforyou
EXT := target/release/libforyou.so

.PHONY: loadable hooks-loadable test unit integration golden example python demo eval eval-quick \
	bench bench-quick clean reference docs-check lint kernels mutants dist test-dist linked-example

# The loadable extension: target/release/libforyou.so (load it as ./target/release/libforyou).
loadable:
	$(CARGO) build --release -p foryou

# The test-hooks build (cargo feature test-hooks, profile hooks): the release .so plus a hidden
# foryou_test_hook() that makes a refit diverge or a callback panic, for tests/tests/hooks.rs
# only. It lives in target/hooks/; the release .so never has it (tests/tests/hooks.rs checks).
HOOKS_EXT := $(CURDIR)/target/hooks/libforyou
hooks-loadable:
	$(CARGO) build --profile hooks -p foryou --features test-hooks

# Every test: model unit tests, rusqlite integration tests, sqlite3-shell golden tests, the example,
# the serving functions from Python, the packages of make dist installed as a user would, and
# the docs' executed examples; the integration tests again at forced kernel levels (kernels).
# Then the short forms of the reliability suite: make fuzz, make torture. Tests that could not
# run (a missing data folder, outside CI) are listed at the end, not swallowed by cargo.
SKIPPED := $(CURDIR)/target/skipped-tests.txt
test: loadable unit integration golden example linked-example python test-dist docs-check kernels \
	fuzz torture
	@if [ -s $(SKIPPED) ]; then \
	  echo "make test: passed, but these checks were SKIPPED:"; sed 's/^/  /' $(SKIPPED); \
	else echo "make test: passed, nothing skipped"; fi

unit:
	$(CARGO) test --release -p foryou --lib

# foryou linked into a Rust application with its own (bundled) SQLite, no .load: the
# rlib with `default-features = false` (examples/linked/, its own lock file), registered by
# register_auto_extension and register_connection; exits non-zero if a check fails.
linked-example:
	$(CARGO) run --manifest-path examples/linked/Cargo.toml --target-dir target/linked

# The lint gate: formatting, then clippy (pedantic, see [workspace.lints] in Cargo.toml) on each
# package separately (their rusqlite features cannot be built together), warnings as errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release -p foryou --all-targets --features test-hooks -- -D warnings
	$(CARGO) clippy --release -p foryou --no-default-features -- -D warnings
	$(CARGO) fmt --manifest-path examples/linked/Cargo.toml -- --check
	$(CARGO) clippy --release -p foryou-tests --all-targets -- -D warnings

integration: loadable hooks-loadable
	@mkdir -p target && rm -f $(SKIPPED)
	FORYOU_EXT=$(CURDIR)/target/release/libforyou FORYOU_HOOKS_EXT=$(HOOKS_EXT) FORYOU_SKIPPED=$(SKIPPED) \
		$(CARGO) test --release -p foryou-tests

# The kernels are chosen at run time (FORYOU_KERNELS=scalar|avx2 forces a lower level than the
# CPU's; docs/model.md#determinism). At each forced level the CPU has: a refit script's output
# (factor bits, scores, metrics) must equal the detected level's byte for byte, the rendered
# reference must equal docs/reference.md, and the integration tests of the model and serving
# must pass.
KERNEL_TESTS := --test boundaries --test evaluate --test refit --test serving --test feedback
kernels: loadable
	@ext=$(CURDIR)/target/release/libforyou; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	detected=$$(sqlite3 -batch -cmd ".load $$ext" :memory: "SELECT foryou_debug()" | sed -n 's/^simd: //p'); \
	sqlite3 -batch -cmd ".load $$ext" :memory: < sql/kernels.sql > "$$tmp/detected.out" 2>&1 || exit 1; \
	for level in scalar avx2; do \
	  if [ "$$detected" = scalar ] && [ $$level = avx2 ]; then echo "kernels: this CPU has no avx2, skipped"; continue; fi; \
	  got=$$(FORYOU_KERNELS=$$level sqlite3 -batch -cmd ".load $$ext" :memory: "SELECT foryou_debug()" | sed -n 's/^simd: //p'); \
	  [ "$$got" = $$level ] || { echo "kernels: FORYOU_KERNELS=$$level ran at '$$got'"; exit 1; }; \
	  FORYOU_KERNELS=$$level sqlite3 -batch -cmd ".load $$ext" :memory: < sql/kernels.sql > "$$tmp/$$level.out" 2>&1; \
	  diff -u "$$tmp/detected.out" "$$tmp/$$level.out" || { echo "kernels: sql/kernels.sql differs at $$level from $$detected"; exit 1; }; \
	  FORYOU_KERNELS=$$level FORYOU_EXT=$$ext $(PYTHON) scripts/render_reference.py docs/reference.in.md "$$tmp/reference.md" || exit 1; \
	  diff -u docs/reference.md "$$tmp/reference.md" || { echo "kernels: docs/reference.md differs at $$level"; exit 1; }; \
	  FORYOU_KERNELS=$$level FORYOU_EXT=$$ext $(CARGO) test --release -q -p foryou-tests $(KERNEL_TESTS) || \
	    { echo "kernels: integration tests fail at $$level"; exit 1; }; \
	  echo "kernels: $$level gives the same factors, scores, metrics and reference as $$detected"; \
	done

# Hand mutations of the model and serving code (tests/mutants/): each applied in a scratch copy,
# built, and run against the tests that should catch it; writes tests/mutants/results.md.
# Not part of make test (about 20 minutes).
mutants:
	nice -n 10 $(PYTHON) tests/mutants/run.py

golden: loadable
	FORYOU_EXT=$(FORYOU_EXT) bash sql/run-golden.sh

# The serving functions from Python's sqlite3, as an app calls them (Debian's python3 can
# load extensions; the pyenv one first on PATH cannot).
PYTHON_EXT ?= /usr/bin/python3
python: loadable
	$(PYTHON_EXT) tests/python/serving.py $(CURDIR)/target/release/libforyou

# dist/: the Python wheel (sqlite_foryou-VERSION-py3-none-manylinux_2_N_x86_64.whl), the
# sqlite-utils and Datasette plugin wheels (sqlite_utils_sqlite_foryou-VERSION-py3-none-any.whl,
# datasette_sqlite_foryou-VERSION-py3-none-any.whl) and the npm tarballs sqlite-foryou-VERSION.tgz
# and sqlite-foryou-linux-x64-VERSION.tgz, around the .so built above (scripts/dist.py;
# VERSION is Cargo.toml's).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
dist: loadable
	$(PYTHON) scripts/dist.py $(EXT) dist

# Installs them outside the tree, as a user would, and gets a feed through each: the wheel in
# a fresh venv of Debian's python3, the npm packages with better-sqlite3 (tests/dist/run.sh);
# then the sqlite-utils and Datasette plugins in a fresh venv with those tools, Datasette's
# pages driven by headless Chromium (tests/plugins/run.sh; screenshot in target/plugins-test/).
test-dist: dist
	bash tests/dist/run.sh dist $(VERSION)
	bash tests/plugins/run.sh dist $(VERSION)

example: loadable
	FORYOU_EXT=$(CURDIR)/target/release/libforyou $(CARGO) run --release -q -p foryou-tests --example session -- --check

# The main job: a simulated viewing session in demo.db, showing a feed before and after watching.
demo: loadable
	rm -f demo.db
	FORYOU_EXT=$(CURDIR)/target/release/libforyou $(CARGO) run --release -q -p foryou-tests --example session -- demo.db

# Ranking quality on real short-video logs (KuaiRec, ../shared/data) against implicit: eval/README.md.
eval: loadable
	bash eval/run.sh

eval-quick: loadable
	QUICK=1 bash eval/run.sh

# Speed against implicit and sqlite-vec: bench/README.md.
bench: loadable
	bash bench/run.sh

bench-quick: loadable
	QUICK=1 bash bench/run.sh

# docs/reference.md, rendered by running the SQL examples of docs/reference.in.md through the
# sqlite3 shell, and README.md's figures block, from bench/results.json and eval/results.json.
reference: loadable
	FORYOU_EXT=$(FORYOU_EXT) $(PYTHON) scripts/render_reference.py docs/reference.in.md docs/reference.md
	$(PYTHON) scripts/render_figures.py README.md README.md

# Renders both into a temporary directory and fails if the committed files differ.
docs-check: loadable
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	FORYOU_EXT=$(FORYOU_EXT) $(PYTHON) scripts/render_reference.py docs/reference.in.md "$$tmp/reference.md" && \
	$(PYTHON) scripts/render_figures.py README.md "$$tmp/README.md" || \
	  { echo "docs-check: rendering failed (see above)"; exit 1; }; \
	ok=1; \
	diff -u docs/reference.md "$$tmp/reference.md" || ok=0; \
	diff -u README.md "$$tmp/README.md" || ok=0; \
	if [ $$ok = 1 ]; then echo "docs-check: docs/reference.md and README.md figures are up to date"; \
	else echo "docs-check: docs/reference.md or README.md's figures differ from what the code and the results files give: run make reference (and review the diff)"; exit 1; fi

clean:
	$(CARGO) clean
	rm -rf demo.db dist

# The reliability suite (tests/reliability/README.md). Short forms run inside make test; the
# long forms take FUZZ_SECONDS / TORTURE_TRIALS / TORTURE_SECONDS, and FUZZ_SEED / TORTURE_SEED
# to repeat a run. FORYOU_STRICT_KNOWN=1 makes the KNOWN findings fail.
FUZZ_SECONDS ?= 600
TORTURE_TRIALS ?= 40
TORTURE_SECONDS ?= 60
RELIABILITY_BINS = $(CARGO) build --release -q -p foryou-tests --bin fuzz --bin torture

.PHONY: fuzz fuzz-long torture torture-long reliability-long

fuzz: loadable
	$(RELIABILITY_BINS)
	FORYOU_EXT=$(CURDIR)/target/release/libforyou target/release/fuzz --seconds 25 --seed $${FUZZ_SEED:-1}

fuzz-long: loadable
	$(RELIABILITY_BINS)
	FORYOU_EXT=$(CURDIR)/target/release/libforyou target/release/fuzz --seconds $(FUZZ_SECONDS) $${FUZZ_SEED:+--seed $$FUZZ_SEED}

torture: loadable
	$(RELIABILITY_BINS)
	FORYOU_EXT=$(CURDIR)/target/release/libforyou target/release/torture --trials 3 --seconds 4 --seed $${TORTURE_SEED:-1}

torture-long: loadable
	$(RELIABILITY_BINS)
	FORYOU_EXT=$(CURDIR)/target/release/libforyou target/release/torture --trials $(TORTURE_TRIALS) --seconds $(TORTURE_SECONDS) $${TORTURE_SEED:+--seed $$TORTURE_SEED}

# Both long forms, then tests/reliability/results.{json,md}, which README.md quotes
# (make reference renders it); RELIABILITY_SEED repeats a run.
RELIABILITY_SEED ?= 20261204
reliability-long: loadable
	$(RELIABILITY_BINS)
	FORYOU_EXT=$(CURDIR)/target/release/libforyou $(PYTHON) scripts/reliability_results.py \
		$(FUZZ_SECONDS) $(TORTURE_TRIALS) $(TORTURE_SECONDS) $(RELIABILITY_SEED)
