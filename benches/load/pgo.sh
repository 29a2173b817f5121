#!/usr/bin/env bash
# pgo.sh: build clawgate with profile-guided optimisation, trained on the
# proxy's own traffic, into target/pgo/release/clawgate.
#
# Why: after the allocation, copy and system-call work was cut (see
# benches/PERFORMANCE.md), the allow path's user time is flat: no function
# outside the inlined request loop is above ≈2 % of it. What is left is the
# compiler's guesses about which branches are taken and what to inline;
# a profile of real requests replaces the guesses. The default build
# (`cargo build --release`) is unchanged; this is a second, optional build
# of the same source, measured beside it (syscalls.sh --pgo).
#
# Steps:
#   1. an instrumented build (RUSTFLAGS=-Cprofile-generate) in target/pgo-gen;
#   2. training: the instrumented clawgate, started by clawgate-bench.sh
#      behind the shared harness's upstream, serves, for --seconds each,
#      wrk's allowed requests, wrong tokens and bad Origins (403 with the
#      diff), with the default limits, as a deployment runs them (a flood of
#      wrong tokens from one address gets 401 sixty times a minute, then
#      429), plus h2load's HTTP/2 (prior knowledge) if h2load is installed;
#      then the three kinds over TLS (keep-alive);
#      each instance stops with SIGTERM (a drained exit writes its profile);
#   3. llvm-profdata (rustup's llvm-tools, installed if missing) merges the
#      profiles of those runs only (not of build scripts);
#   4. the optimised build (RUSTFLAGS=-Cprofile-use) in target/pgo.
# WebSocket relaying is not trained: those paths are compiled as if cold,
# which a profile-use build does for any path its training missed.
#
# Usage: benches/load/pgo.sh [--seconds S]   (default 4; at most 60)
# Needs: nginx (the upstream), wrk, openssl; h2load optional. ≈6 minutes on
# 2 cores (two release builds).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${CLAWGATE_SHARED_BENCH:-$root/../shared/bench}

seconds=4
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pgo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $seconds in ''|*[!0-9]*) echo "pgo.sh: --seconds takes a whole number" >&2; exit 2 ;; esac
[ "$seconds" -ge 1 ] && [ "$seconds" -le 60 ] || { echo "pgo.sh: --seconds between 1 and 60" >&2; exit 2; }
for tool in wrk nginx openssl; do
  command -v "$tool" >/dev/null || { echo "pgo.sh: $tool not found (apt-get install wrk nginx-light openssl)" >&2; exit 1; }
done

rustup component list --installed 2>/dev/null | grep -q '^llvm-tools' || rustup component add llvm-tools
profdata=$(find "$(rustc --print sysroot)/lib/rustlib" -name llvm-profdata -type f | head -n1)
[ -x "$profdata" ] || { echo "pgo.sh: llvm-profdata not found after 'rustup component add llvm-tools'" >&2; exit 1; }

data=$(mktemp -d /tmp/clawgate-pgo.XXXXXX)
cd "$root"
echo "pgo.sh: 1/4 instrumented build (target/pgo-gen)" >&2
RUSTFLAGS="-Cprofile-generate=$data/build" cargo build --release --bin clawgate --target-dir target/pgo-gen

# shellcheck source=/dev/null
source "$shared/lib/common.sh"
bench_init
start_upstream
export CLAWGATE_BIN=$root/target/pgo-gen/release/clawgate
# Each process writes its own file (%p), away from the build scripts' ones.
export LLVM_PROFILE_FILE=$data/run/clawgate-%p.profraw

# train NAME URL: wrk's three request kinds through one instance
train() {
  local name=$1 url=$2 auth origin
  for kind in allow deny origin; do
    auth="Bearer $BENCH_TOKEN" origin=$BENCH_ORIGIN_OK
    [ "$kind" = deny ] && auth="Bearer wrong-$BENCH_TOKEN"
    [ "$kind" = origin ] && origin=https://evil.example.net
    BENCH_AUTH="$auth" BENCH_ORIGIN="$origin" timeout -k 5 $((seconds + 30)) \
      taskset -c "$LOAD_CPU" wrk -t1 -c32 -d"${seconds}s" --timeout 5s \
      -s "$shared/lib/wrk-report.lua" "$url" | grep '^RESULT ' | sed "s/^/pgo.sh:   $name $kind: /" >&2 || true
  done
}

echo "pgo.sh: 2/4 training for ${seconds}s per kind of request" >&2
start_extra_cmd pgo http://127.0.0.1:19030/ "$here/clawgate-bench.sh"
train http http://127.0.0.1:19030/
if command -v h2load >/dev/null; then
  timeout -k 5 $((seconds + 30)) taskset -c "$LOAD_CPU" h2load -D "$seconds" -c 8 -m 10 \
    -H "Authorization: Bearer $BENCH_TOKEN" -H "Origin: $BENCH_ORIGIN_OK" \
    http://127.0.0.1:19030/ | grep '^requests:' | sed 's/^/pgo.sh:   h2c: /' >&2 || true
fi
bench_stop_pid "$PID_x_pgo"
"$here/make-cert.sh" "$RUN"
CLAWGATE_BENCH_TLS_CERT="$RUN/server.pem" CLAWGATE_BENCH_TLS_KEY="$RUN/server.key" \
  start_extra_cmd pgo_tls http://127.0.0.1:19031/ "$here/clawgate-bench.sh"
train tls https://127.0.0.1:19031/
bench_stop_pid "$PID_x_pgo_tls"

echo "pgo.sh: 3/4 merging $(find "$data/run" -name '*.profraw' | wc -l) profiles" >&2
profiles=("$data"/run/*.profraw)
[ -s "${profiles[0]}" ] || { echo "pgo.sh: the instrumented clawgate wrote no profile ($data/run)" >&2; exit 1; }
"$profdata" merge -o "$data/merged.profdata" "${profiles[@]}"

echo "pgo.sh: 4/4 optimised build (target/pgo)" >&2
unset LLVM_PROFILE_FILE
RUSTFLAGS="-Cprofile-use=$data/merged.profdata" \
  cargo build --release --bin clawgate --target-dir target/pgo
rm -rf "$data"
echo "pgo.sh: built $root/target/pgo/release/clawgate" >&2
