#!/usr/bin/env bash
# The OpenClaw end-to-end suite, one entry point:
#
#   tests/e2e/run.sh [path/to/clawgate]     (default: cargo build, target/debug/clawgate)
#
# install.sh (Node 24, openclaw, Debian chromium + tmux, playwright-core and
# ws; idempotent, cached), then openclaw_cli.sh (the real CLI), browser.sh
# (real Chromium and the Control UI), revoke.sh (an open `openclaw tui`
# closed on reload) and examples.sh (config/examples/ checked with the real
# tools), one after the other: they share the namespace name, the /30 and
# port 8443, so they never run in parallel.
# Prints each script's lines, then one final line "N passed, N failed"
# (the sum); exits non-zero when anything failed or a script died.
# Every step is bounded (CLAWGATE_E2E_STEP_BUDGET, default 300 s each; the
# scripts' own watchdogs fire first) and on exit, normal or not, every child
# process group is stopped and the namespace removed.
# Needs root. Knobs of the scripts (CLAWGATE_E2E_KEEP, CLAWGATE_E2E_CACHE,
# CLAWGATE_E2E_PORT, CLAWGATE_E2E_SHOTS) pass through.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STEP_BUDGET="${CLAWGATE_E2E_STEP_BUDGET:-300}"
PASS=0 FAIL=0 CHILD="" STEP_OUT="" T_START=$(date +%s)
# The scripts append the process groups they start (gateway, clawgate,
# browser, ws client) here; on exit any still alive is killed by its id.
export CLAWGATE_E2E_PIDFILE
CLAWGATE_E2E_PIDFILE="$(mktemp /tmp/clawgate-e2e-pids.XXXXXX)"

stop_child() {
  local i
  [[ -n "$CHILD" ]] && kill -0 "$CHILD" 2>/dev/null || return 0
  kill -TERM -- "-$CHILD" 2>/dev/null   # the script's trap cleans up after itself
  for i in $(seq 1 300); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$CHILD" 2>/dev/null
  wait "$CHILD" 2>/dev/null
  CHILD=""
}
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  stop_child
  if [[ -n "$STEP_OUT" && -f "$STEP_OUT" ]]; then   # an interrupted step: show what it said
    sed -E 's/^([0-9]+ passed, [0-9]+ failed)$/# (interrupted step) \1/' "$STEP_OUT"
    rm -f "$STEP_OUT"
  fi
  local pg
  while read -r pg; do
    [[ "$pg" =~ ^[0-9]+$ ]] && kill -0 "$pg" 2>/dev/null && { echo "# killing leftover process group $pg"; kill -KILL -- "-$pg" 2>/dev/null; }
  done <"$CLAWGATE_E2E_PIDFILE"
  rm -f "$CLAWGATE_E2E_PIDFILE"
  # Belt and braces: nothing of ours may survive in or around the namespace.
  # shellcheck source=netns.sh
  . "$HERE/netns.sh"
  if netns_exists; then
    local left; left="$(ip netns pids "$CG_NS" 2>/dev/null)"
    # shellcheck disable=SC2086
    [[ -n "$left" ]] && kill -KILL $left 2>/dev/null
    netns_down
  fi
  echo "# e2e total $(( $(date +%s) - T_START ))s"
  echo "$PASS passed, $FAIL failed"
  if [[ $FAIL -gt 0 || $rc -ne 0 ]]; then exit 1; fi
  exit 0
}
trap on_exit EXIT
trap 'echo "not ok - run.sh interrupted"; FAIL=$((FAIL + 1)); exit 130' INT TERM

[[ $(id -u) -eq 0 ]] || { echo "not ok - tests/e2e/run.sh needs root (ip netns, veth, unshare -m)"; FAIL=1; exit 1; }

# ---------------------------------------------------------------- binary ---
if [[ -n "${1:-}" ]]; then
  BIN="$1"
else
  echo "# cargo build (no clawgate binary given)"
  (cd "$ROOT" && timeout 1800 cargo build --bin clawgate) || { echo "not ok - cargo build"; FAIL=1; exit 1; }
  BIN="$ROOT/target/debug/clawgate"
fi
[[ -x "$BIN" ]] || { echo "not ok - clawgate binary not executable: $BIN"; FAIL=1; exit 1; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

# --------------------------------------------------------------- install ---
t=$(date +%s)
if timeout 1800 bash "$HERE/install.sh" >/dev/null; then
  echo "# setup: install.sh ($(( $(date +%s) - t ))s)"   # a precondition, not a test
else
  FAIL=$((FAIL + 1)); echo "not ok - install.sh failed"; exit 1
fi
T_TESTS=$(date +%s)

# ----------------------------------------------------------------- steps ---
run_step() {  # run_step SCRIPT: run it, relay its lines, add its tally
  local script="$1" out t0 tally p f rc
  out="$(mktemp /tmp/clawgate-e2e-run.XXXXXX)"
  STEP_OUT="$out"
  t0=$(date +%s)
  echo "# === $script"
  # Own process group (setsid) so a stop takes its children too; the
  # script's watchdog gets the same budget, `timeout` a little more.
  CLAWGATE_E2E_BUDGET="$STEP_BUDGET" setsid timeout -k 20 $((STEP_BUDGET + 30)) \
    bash "$HERE/$script" "$BIN" </dev/null >"$out" 2>&1 &
  CHILD=$!
  wait "$CHILD"; rc=$?
  CHILD=""
  # Relay, but keep the scripts' own tally lines from looking like ours.
  sed -E 's/^([0-9]+ passed, [0-9]+ failed)$/# '"$script"': \1/' "$out"
  tally="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -1)"
  rm -f "$out"
  STEP_OUT=""
  if [[ -n "$tally" ]]; then
    p="${tally%% passed*}"; f="${tally#*, }"; f="${f%% failed*}"
    PASS=$((PASS + p)); FAIL=$((FAIL + f))
    if [[ $rc -ne 0 && $f -eq 0 ]]; then FAIL=$((FAIL + 1)); echo "not ok - $script exited $rc"; fi
    if [[ $p -eq 0 && $f -eq 0 ]]; then FAIL=$((FAIL + 1)); echo "not ok - $script ran no checks"; fi
  else
    FAIL=$((FAIL + 1)); echo "not ok - $script ended without a tally (exit $rc)"
  fi
  echo "# $script took $(( $(date +%s) - t0 ))s (exit $rc)"
}
run_step openclaw_cli.sh
run_step browser.sh
run_step revoke.sh
run_step examples.sh
echo "# tests took $(( $(date +%s) - T_TESTS ))s after the install"
exit 0
