#!/usr/bin/env bash
# The parsers of what kuzet reads from outside under libFuzzer (cargo-fuzz, fuzz/): the MQTT
# payload codec, the topic parser and the HTTP query-string parsers (kuzet-contract).
#
#   scripts/fuzz.sh smoke           each target for FUZZ_SECONDS (20) seconds (make test)
#   scripts/fuzz.sh bench           each target for FUZZ_RUNS (10,000,000) executions
#   scripts/fuzz.sh run TARGET [S]  one target for S seconds (default 60)
#
# Needs the nightly toolchain (beside stable; the stable build never sees cargo-fuzz) and
# installs cargo-fuzz from crates.io when it is missing. Prints, per target, the executions,
# executions a second, seconds, coverage (edges) and features, and crashes, then a line
# `fuzz TARGET: N passed, M failed` that scripts/test.sh counts. A crash (a panic, a failed
# invariant, an input over the time limit) exits non-zero and names the reproducer:
# replay it with fuzz/target/<triple>/release/TARGET FILE, and make it a regression test in
# contract/tests/fuzz_crashes/TARGET/ (docs/security.md, "Fuzzing").
#
# The corpus grows in fuzz/corpus/TARGET (not committed) from the seeds in fuzz/seeds/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(codec topics params)
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_RUNS=${FUZZ_RUNS:-10000000}
# The contract's parsers are safe Rust: no sanitizer (AddressSanitizer would halve the rate
# and find nothing the borrow checker has not), but debug assertions and overflow checks on.
BUILD_FLAGS=(--release --debug-assertions --sanitizer none)

log() { printf 'fuzz: %s\n' "$*"; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

ensure_tools() {
  command -v rustup >/dev/null || die "rustup not found: the fuzz build needs a nightly toolchain"
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "installing the nightly toolchain (minimal profile)"
    rustup toolchain install nightly --profile minimal
  fi
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz into the nightly toolchain's cargo"
    cargo +nightly install cargo-fuzz --locked
  fi
}

build() {
  log "building the targets ($(cargo +nightly fuzz --version))"
  (cd fuzz && cargo +nightly fuzz build "${BUILD_FLAGS[@]}")
}

# stat NAME FILE: the value of libFuzzer's `stat::NAME:` line.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }

# run TARGET LIMIT...: runs one target with libFuzzer limits (-max_total_time=..., -runs=...).
run() {
  local target=$1
  shift
  local bin=fuzz/target/$TRIPLE/release/$target
  local out=fuzz/target/fuzz-logs/$target.log
  local corpus=fuzz/corpus/$target artifacts=fuzz/artifacts/$target/
  local dict=()
  [ -f "fuzz/dict/$target.dict" ] && dict=("-dict=fuzz/dict/$target.dict")
  mkdir -p "$corpus" "$artifacts" "$(dirname "$out")"
  local start rc=0
  start=$(date +%s.%N)
  # -timeout: an input that takes 10 s is a finding too (a parser must not hang).
  "$bin" "$corpus" "fuzz/seeds/$target" "${dict[@]}" "$@" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts" >"$out" 2>&1 || rc=$?
  local seconds runs rate cov
  seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  runs=$(stat number_of_executed_units "$out")
  rate=$(stat average_exec_per_sec "$out")
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$out" | tail -1 || true)
  printf 'fuzz: %-7s %12s executions  %8s exec/s  %6s s  %s\n' \
    "$target" "${runs:-?}" "${rate:-?}" "$seconds" "${cov:-cov: ?}"
  if ((rc != 0)); then
    local repro
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$out" | tail -1)
    grep -m1 -A3 "panicked at" "$out" | sed 's/^/fuzz:   /' || true
    log "$target: CRASH (libFuzzer exit $rc); reproducer: ${repro:-none written}; log: $out"
    log "$target: replay with $bin ${repro:-FILE}"
    echo "fuzz $target: 0 passed, 1 failed"
    return 1
  fi
  echo "fuzz $target: 1 passed, 0 failed"
}

mode=${1:-}
case "$mode" in
  smoke | bench) targets=("${TARGETS[@]}") ;;
  run)
    [ -n "${2:-}" ] || usage
    targets=("$2")
    FUZZ_SECONDS=${3:-60}
    ;;
  *) usage ;;
esac

ensure_tools
build
TRIPLE=$(rustc +nightly -vV | sed -n 's/^host: //p')

failed=0
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || die "no fuzz target $t (fuzz/fuzz_targets/)"
  if [ "$mode" = bench ]; then
    run "$t" -runs="$FUZZ_RUNS" || failed=1
  else
    run "$t" -max_total_time="$FUZZ_SECONDS" || failed=1
  fi
done
exit "$failed"
