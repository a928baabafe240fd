# kuzet developer tasks. `make` alone lists them.
.DEFAULT_GOAL := help
.PHONY: help demo test bench chaos fuzz lint clean-services

# Extra arguments for `kuzet-demo`, e.g. make demo ARGS="--units 50".
ARGS ?=
# What `make fuzz` runs: smoke (20 s a target), bench (10M executions a target) or run TARGET [S].
FUZZ ?= smoke

help:
	@echo "kuzet targets:"
	@echo "  make demo [ARGS=...]  set up, then run the demo (release build)"
	@echo "  make test             set-up, compose check, build and the whole test suite (what CI runs)"
	@echo "  make bench            set up, then run the benchmarks (release build)"
	@echo "  make chaos            the long chaos run: 100 kills of kuzet, 5 of the broker (release build)"
	@echo "  make fuzz [FUZZ=...]  the parsers under libFuzzer: smoke (default) or bench (10M runs a target)"
	@echo "  make lint             cargo fmt --check and clippy with warnings as errors"
	@echo "  make clean-services   nothing to clean: tests and benches stop their own brokers"

demo:
	scripts/demo.sh $(ARGS)

test:
	scripts/test.sh

bench:
	scripts/bench.sh

chaos:
	scripts/chaos.sh

fuzz:
	scripts/fuzz.sh $(FUZZ)

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

clean-services:
	@echo "clean-services: nothing to do (tests and benches start and stop private brokers)"
