#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time (FUZZ_SECONDS each,
# default 20) from the seed corpus in corpus/<target>/; fail on any crash.
# New inputs go to a scratch directory, so the repo's corpus stays small.
# Needs only the stable toolchain: RUSTC_BOOTSTRAP lets it take the
# sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo fuzz build --debug-assertions
failed=()
for t in $(cargo fuzz list); do
  mkdir -p "$work/$t"
  echo "== $t (${secs}s)"
  set +e
  cargo fuzz run --debug-assertions "$t" "$work/$t" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$work/$t.log" 2>&1
  status=$?
  set -e
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/$t.log" | grep -oE '[0-9]+$' || echo "?")
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "   CRASH after $execs executions (exit $status):"
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|Reproduce|artifact' "$work/$t.log" | head -20 | sed 's/^/   /'
  else
    echo "   ok: $execs executions, 0 crashes, corpus $(ls "$work/$t" | wc -l) new inputs"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]} (inputs under fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: all targets ran ${secs}s each without a crash"
