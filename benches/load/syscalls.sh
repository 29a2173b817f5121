#!/usr/bin/env bash
# syscalls.sh: where each proxy's CPU time goes, per request: user and
# kernel microseconds (utime/stime from /proc/PID/stat), system calls and
# context switches (perf stat on the proxy's PID), for nginx, HAProxy and
# clawgate doing the shared harness's job, interleaved.
#
# compare.sh answers "how much CPU per request"; this answers "in user
# space or in the kernel, and in how many system calls", which is what
# decides whether a user-space change can still move the total.
#
# Starts the harness's upstream, nginx and HAProxy (../shared/bench/lib)
# and clawgate (clawgate-bench.sh), all pinned as compare.sh pins them
# (proxy on PROXY_CPU, wrk + upstream on LOAD_CPU), runs wrk for --duration
# seconds per target, mode and round (interleaved: every round runs every
# mode on every target), and stops only what it started. Interleaving the
# modes is what makes "refusals per second / allowed requests per second"
# a ratio taken at one time on this VM, whose speed drifts by minutes.
#
# Usage:
#   benches/load/syscalls.sh [--rounds N] [--duration S] [--conns C]
#                            [--modes LIST] [--only LIST]
#   --modes (comma-separated, default allow):
#     allow   valid token + allowed Origin -> 200 from the upstream
#     deny    wrong token -> 401/403 from the proxy
#     origin  valid token + an Origin not on the list -> 403 (clawgate's
#             carries the origins diff; nginx's and HAProxy's are bare)
# Needs perf (Debian: linux-perf) and a release build (cargo build --release).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${CLAWGATE_SHARED_BENCH:-$root/../shared/bench}

rounds=3 duration=4 conns=32 modes=allow only="nginx haproxy clawgate"
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --modes) modes=${2//,/ }; shift 2 ;;
    --only) only=${2//,/ }; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "syscalls.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$rounds" "$duration" "$conns"; do
  case $v in ''|*[!0-9]*) echo "syscalls.sh: numeric option expected, got '$v'" >&2; exit 2 ;; esac
done
[ "$rounds" -le 20 ] && [ "$duration" -le 60 ] || { echo "syscalls.sh: at most --rounds 20 --duration 60" >&2; exit 2; }
for m in $modes; do
  case $m in allow|deny|origin) ;; *) echo "syscalls.sh: --modes takes allow, deny, origin" >&2; exit 2 ;; esac
done
command -v perf >/dev/null || { echo "syscalls.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
[ -x "$root/target/release/clawgate" ] || { echo "syscalls.sh: run cargo build --release first" >&2; exit 1; }

# shellcheck source=/dev/null
source "$shared/lib/common.sh"
bench_init
start_upstream
start_nginx_proxy
start_haproxy_proxy
start_extra_cmd clawgate http://127.0.0.1:19010/ "$here/clawgate-bench.sh"

declare -A URL=([nginx]="http://127.0.0.1:$NGINX_PORT/" [haproxy]="http://127.0.0.1:$HAPROXY_PORT/"
                [clawgate]=http://127.0.0.1:19010/)
# nginx's master only waits: its (one) worker does the work.
declare -A PID=([nginx]=$(ps --ppid "$PID_nginx" -o pid= | head -n1 | tr -d ' ')
                [haproxy]=$PID_haproxy [clawgate]=$PID_x_clawgate)
# ticks PID -> "utime stime" (clock ticks, all threads)
ticks() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; set -- $s; echo "${12} ${13}"; }

# one TARGET MODE ROUND: a wrk run, one table row
one() {
  local t=$1 m=$2 r=$3 pid=${PID[$1]} auth="Bearer $BENCH_TOKEN" origin=$BENCH_ORIGIN_OK
  local u0 s0 u1 s1 perf_pid out n sc cs
  [ "$m" = deny ] && auth="Bearer wrong-$BENCH_TOKEN"
  [ "$m" = origin ] && origin=https://evil.example.net
  read -r u0 s0 < <(ticks "$pid")
  perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$pid" -o "$RUN/perf.$t" \
    -- sleep "$((duration + 1))" &
  perf_pid=$!
  sleep 0.5
  out=$(BENCH_AUTH="$auth" BENCH_ORIGIN="$origin" timeout -k 5 $((duration + 30)) \
        taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${duration}s" --timeout 5s \
        -s "$shared/lib/wrk-report.lua" "${URL[$t]}" 2>&1 | grep '^RESULT ' || true)
  wait "$perf_pid"
  read -r u1 s1 < <(ticks "$pid")
  n=$(printf '%s' "$out" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
  [ -n "$n" ] && [ "$n" -gt 0 ] || { log "wrk failed for $t ($m)"; return 0; }
  sc=$(awk -F, '$3 ~ /sys_enter/ {print $1}' "$RUN/perf.$t")
  cs=$(awk -F, '$3 ~ /context-switches/ {print $1}' "$RUN/perf.$t")
  awk -v t="$t" -v m="$m" -v r="$r" -v n="$n" -v d="$duration" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
      -v hz="$CLK_TCK" -v sc="$sc" -v cs="$cs" 'BEGIN {
    us = 1e6 / hz / n
    printf "%-9s %-7s %5d %9.0f %8.2f %8.2f %8.2f %9.2f %9.3f\n", t, m, r, n / d, u * us, s * us, (u + s) * us, sc / n, cs / n
  }' | tee -a "$RUN/rows" >&2
}

: >"$RUN/rows"
for ((r = 1; r <= rounds; r++)); do
  for m in $modes; do
    for t in $only; do one "$t" "$m" "$r"; done
  done
done

echo
echo "== $conns conns, $rounds rounds x ${duration}s, modes interleaved; medians per request =="
echo "   (user/kernel CPU-µs of the proxy from /proc/PID/stat; system calls and context switches from perf stat)"
printf '%-9s %-7s %9s %8s %8s %8s %9s %9s %9s\n' target mode req/s user_us sys_us cpu_us syscalls ctxsw rps/allow
for t in $only; do
  allow_rps=""
  for m in $modes; do
    row=$(awk -v t="$t" -v m="$m" '$1 == t && $2 == m' "$RUN/rows" | awk '
      { for (c = 4; c <= 9; c++) v[c, NR] = $c }
      END {
        if (NR == 0) exit
        for (c = 4; c <= 9; c++) {
          n = 0; for (i = 1; i <= NR; i++) a[++n] = v[c, i]
          for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
          med[c] = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        printf "%.0f %.2f %.2f %.2f %.2f %.3f", med[4], med[5], med[6], med[7], med[8], med[9]
      }')
    [ -n "$row" ] || continue
    set -- $row
    [ "$m" = allow ] && allow_rps=$1
    ratio=-
    [ -n "$allow_rps" ] && ratio=$(awk -v a="$1" -v b="$allow_rps" 'BEGIN { printf "%.2f", a / b }')
    printf '%-9s %-7s %9s %8s %8s %8s %9s %9s %9s\n' "$t" "$m" "$@" "$ratio"
  done
done
echo "(perf counts span the wrk run plus ~1.5 s around it; idle system calls (timers, config polling) are a few dozen a second, noise at these rates)"
echo "(rps/allow: this mode's median req/s over the allow mode's, same target; list allow first in --modes)"
