#!/usr/bin/env bash
# compare.sh: clawgate side by side with nginx and HAProxy doing the same job
# (token check, Origin allowlist, CIDR allow, request-ID header, keep-alive
# upstream), interleaved in one run, on loopback, with the shared harness
# (../shared/bench/compare.sh; see its README for every column).
#
# Steps:
#   1. apt-get install nginx-light haproxy wrk nghttp2-client valgrind curl
#      if any is missing (Debian; needs root)
#   2. cargo build --release (skip with --no-build)
#   3. passes, each interleaving direct / nginx / haproxy / clawgate:
#        main    --mode both (allow: good token + allowed Origin -> 200;
#                deny: wrong token -> 401/403) at --conns (default 32)
#        c1000   allow path with 1,000 keep-alive connections
#        origin  valid token + an Origin not on the list -> 403; clawgate
#                builds the origins diff body (nginx/HAProxy send a bare
#                403). Runs the harness's "allow" mode with the presented
#                Origin swapped, so its table reads bad%=100 and smoke=FAIL
#                for every proxy by design: read req/s and proxyCPU us/r.
#   4. optionally (--instr) the harness's instr.sh: callgrind instructions
#      per request, allow and deny, nginx / haproxy / clawgate; then again
#      with the presented Origin swapped (pass instr-origin), so its
#      "allow" column is the bad-Origin 403 (clawgate's with the diff and
#      the denial line, its writer thread included) and its "deny" column
#      the wrong token again.
#
# clawgate is started by the harness through benches/load/clawgate-bench.sh
# (config from the BENCH_* environment), pinned to PROXY_CPU, and stopped by
# it. Output of every pass goes to the terminal and to OUT_DIR.
#
# Usage:
#   benches/load/compare.sh [--rounds N] [--duration S] [--conns C] [--warmup S]
#                           [--only LIST] [--passes main,c1000,origin] [--instr]
#                           [--instr-requests N] [--no-build] [--no-install]
# Environment: CLAWGATE_SHARED_BENCH (default: ../shared/bench from the repo
#   root), CLAWGATE_PORT (19010), OUT_DIR (default /tmp/clawgate-compare.TS),
#   plus the harness's own (PROXY_CPU, LOAD_CPU, BENCH_KEEP_RUN, ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${CLAWGATE_SHARED_BENCH:-$root/../shared/bench}
port=${CLAWGATE_PORT:-19010}
wrapper=$here/clawgate-bench.sh
url="http://127.0.0.1:$port/"

rounds=5 duration=4 conns=32 warmup=1 only="" passes="main,c1000,origin"
instr=0 instr_requests=2000 build=1 install=1
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --passes) passes=$2; shift 2 ;;
    --instr) instr=1; shift ;;
    --instr-requests) instr_requests=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-install) install=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$rounds" "$duration" "$conns" "$warmup" "$instr_requests"; do
  case $v in ''|*[!0-9]*) echo "compare.sh: numeric option expected, got '$v'" >&2; exit 2 ;; esac
done
# bounded: at most 20 rounds of 60 s
[ "$rounds" -le 20 ] && [ "$duration" -le 60 ] || { echo "compare.sh: at most --rounds 20 --duration 60" >&2; exit 2; }

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---- 1. tools -------------------------------------------------------------------
# shellcheck source=procs.sh
source "$here/procs.sh"
mapfile -t missing < <(missing_tools nginx:nginx-light haproxy:haproxy wrk:wrk h2load:nghttp2-client valgrind:valgrind curl:curl)
if [ ${#missing[@]} -gt 0 ] && [ "$install" = 0 ]; then
  log "missing: ${missing[*]} (drop --no-install)"
  exit 1
fi
debian_install compare.sh "${missing[@]}"
[ -x "$shared/compare.sh" ] || { log "shared harness not found at $shared (set CLAWGATE_SHARED_BENCH)"; exit 1; }

# ---- 2. build ---------------------------------------------------------------------
if [ "$build" = 1 ]; then
  log "cargo build --release"
  (cd "$root" && cargo build --release --bin clawgate)
fi
bin=${CLAWGATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/clawgate}
[ -x "$bin" ] || { log "$bin missing"; exit 1; }

busy_check() {
  if pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; then
    log "WARNING: a cargo/rustc build is running on this machine; this pass is disturbed (see other% in the table)"
  fi
}

OUT_DIR=${OUT_DIR:-/tmp/clawgate-compare.$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT_DIR"
log "output: $OUT_DIR"

common=(--rounds "$rounds" --duration "$duration" --warmup "$warmup")
[ -n "$only" ] && common+=(--only "$only")
target=(--cmd "clawgate=$wrapper" "clawgate=$url")

run_pass() {
  local name=$1; shift
  busy_check
  log "pass $name: $*"
  # the harness prints its table on stdout, progress on stderr: keep both
  "$@" 2>&1 | tee "$OUT_DIR/$name.txt"
}

case ",$passes," in *,main,*)
  run_pass main "$shared/compare.sh" --mode both --conns "$conns" "${common[@]}" "${target[@]}" ;;
esac
case ",$passes," in *,c1000,*)
  run_pass c1000 "$shared/compare.sh" --mode allow --conns 1000 "${common[@]}" "${target[@]}" ;;
esac
case ",$passes," in *,origin,*)
  o_only=${only:-nginx,haproxy,clawgate}
  run_pass origin env BENCH_ORIGIN_OK=https://evil.example.net \
    "$shared/compare.sh" --mode allow --conns "$conns" --rounds "$rounds" --duration "$duration" \
    --warmup "$warmup" --only "$o_only" "${target[@]}" ;;
esac
if [ "$instr" = 1 ]; then
  run_pass instr "$shared/instr.sh" --requests "$instr_requests" "${target[@]}"
  run_pass instr-origin env BENCH_ORIGIN_OK=https://evil.example.net \
    "$shared/instr.sh" --requests "$instr_requests" "${target[@]}"
fi

log "done; tables in $OUT_DIR/*.txt"
