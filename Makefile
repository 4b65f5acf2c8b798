# foryou: make loadable | test | demo | eval | bench | clean
CARGO ?= cargo
EXT := target/release/libforyou.so

.PHONY: loadable test unit integration golden example demo eval eval-quick bench bench-quick clean

# The loadable extension: target/release/libforyou.so (load it as ./target/release/libforyou).
loadable:
	$(CARGO) build --release -p foryou

# Every test: model unit tests, rusqlite integration tests, sqlite3-shell golden tests, the example.
test: loadable unit integration golden example

unit:
	$(CARGO) test --release -p foryou --lib

integration: loadable
	FORYOU_EXT=$(CURDIR)/target/release/libforyou $(CARGO) test --release -p foryou-tests

golden: loadable
	bash sql/run-golden.sh

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

clean:
	$(CARGO) clean
	rm -f demo.db
