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
# Each round starts with a different target, so none always runs first.
# Every row also shows the steal time of both cores (/proc/stat): on this
# VM a round that ran at a third of the usual speed is one where the
# hypervisor took a third of a core, which the row then says.
#
# At the end, issue #8's targets as this run measured them: each ratio
# is taken within one round (clawgate against nginx run seconds apart, a
# refusal mode against clawgate's own allow mode), and the median over the
# rounds is the verdict, with the rounds' range beside it.
#
# Usage:
#   benches/load/syscalls.sh [--rounds N] [--duration S] [--conns C]
#                            [--modes LIST] [--only LIST] [--no-perf]
#                            [--access-log] [--tls] [--pgo] [--floor]
#   --no-perf: no perf stat attached. perf's system-call tracepoint sends
#     every system call of the proxy through the kernel's slow path, which
#     adds kernel time per call (more to a proxy making more calls); use
#     it for the CPU and throughput verdict, without it for the counts.
#   --modes (comma-separated, default allow):
#     allow   valid token + allowed Origin -> 200 from the upstream
#     deny    wrong token -> 401/403 from the proxy
#     origin  valid token + an Origin not on the list -> 403 (clawgate's
#             carries the origins diff; nginx's and HAProxy's are bare)
#   --access-log: every proxy logs every request, as each would in
#     production (the harness's job has logging off): nginx
#     `access_log ... combined buffer=64k flush=100ms` to a file (batched,
#     like clawgate's), HAProxy `option httplog` to its stdout (it logs
#     through a socket or a stream, one write a line), clawgate its JSON
#     access log to a file in its config dir (`access.log`, rotating).
#     The ratios at the end are then the same ratios with logs on.
#   --tls: clients speak HTTPS to the proxies (wrk over TLS, keep-alive, so
#     one handshake per connection). make-cert.sh makes a throwaway CA and
#     an ECDSA P-256 certificate for 127.0.0.1; nginx (`listen ... ssl`),
#     HAProxy (`bind ... ssl crt`) and clawgate (`tls_cert`, `tls_key`)
#     serve it, with the harness's job otherwise unchanged. The upstream
#     stays plain. Issue #8's targets are for plain HTTP: with --tls the
#     block at the end compares the same ratios over TLS.
#   --pgo: also clawgate's profile-guided build (target/pgo/release/clawgate,
#     made by pgo.sh) as target "pgo", interleaved with the rest, and
#     issue #8's ratios for it beside the default build's.
#   --floor: also HAProxy as a bare TCP relay (target "l4": mode tcp, one
#     thread, each client connection relayed to one of its own to the
#     upstream, nothing parsed, checked or logged; TLS terminated with
#     --tls), in the allow mode only, on 127.0.0.1:19030. It makes the
#     same four socket calls a request as the HTTP proxies with little
#     user space (HAProxy's event loop and buffers only), so its CPU per
#     request is about what the kernel alone costs on this machine: the
#     floor under any proxy's ratio, printed beside the targets.
# Needs perf (Debian: linux-perf) and a release build (cargo build --release).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${CLAWGATE_SHARED_BENCH:-$root/../shared/bench}

rounds=3 duration=4 conns=32 modes=allow only="nginx haproxy clawgate" use_perf=1 tls=0 access_log=0 pgo=0 floor=0
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --modes) modes=${2//,/ }; shift 2 ;;
    --only) only=${2//,/ }; shift 2 ;;
    --no-perf) use_perf=0; shift ;;
    --tls) tls=1; shift ;;
    --access-log) access_log=1; shift ;;
    --pgo) pgo=1; shift ;;
    --floor) floor=1; shift ;;
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
[ "$use_perf" = 0 ] || command -v perf >/dev/null || { echo "syscalls.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
[ -x "$root/target/release/clawgate" ] || { echo "syscalls.sh: run cargo build --release first" >&2; exit 1; }
if [ "$pgo" = 1 ]; then
  [ -x "$root/target/pgo/release/clawgate" ] || { echo "syscalls.sh: --pgo: run benches/load/pgo.sh first" >&2; exit 1; }
  only="$only pgo"
fi

# shellcheck source=/dev/null
source "$shared/lib/common.sh"
bench_init
start_upstream
scheme=http
if [ "$tls" = 1 ] || [ "$access_log" = 1 ]; then
  # The harness's own proxy configs, edited: TLS on the listening side
  # only, and/or logging on.
  render "$BENCH_DIR/conf/nginx-proxy.conf.tmpl" "$RUN/nginx-proxy.conf" "$NGINX_PORT"
  render "$BENCH_DIR/conf/haproxy-proxy.cfg.tmpl" "$RUN/haproxy-proxy.cfg" "$HAPROXY_PORT"
  if [ "$tls" = 1 ]; then
    "$here/make-cert.sh" "$RUN" || die "--tls: making the certificate failed"
    sed -i "s|listen 127.0.0.1:$NGINX_PORT backlog=4096;|listen 127.0.0.1:$NGINX_PORT ssl backlog=4096; ssl_certificate $RUN/server.pem; ssl_certificate_key $RUN/server.key;|" \
      "$RUN/nginx-proxy.conf"
    grep -q "ssl_certificate " "$RUN/nginx-proxy.conf" || die "--tls: the nginx template's listen line changed"
    sed -i "s|^\( *bind 127.0.0.1:$HAPROXY_PORT\)\$|\1 ssl crt $RUN/server-full.pem alpn http/1.1|" "$RUN/haproxy-proxy.cfg"
    grep -q "ssl crt" "$RUN/haproxy-proxy.cfg" || die "--tls: the HAProxy template's bind line changed"
    export CLAWGATE_BENCH_TLS_CERT="$RUN/server.pem" CLAWGATE_BENCH_TLS_KEY="$RUN/server.key"
    scheme=https
  fi
  if [ "$access_log" = 1 ]; then
    sed -i "s|^\( *\)access_log off;|\1access_log $RUN/nginx-access.log combined buffer=64k flush=100ms;|" "$RUN/nginx-proxy.conf"
    grep -q "nginx-access.log" "$RUN/nginx-proxy.conf" || die "--access-log: the nginx template's access_log line changed"
    sed -i -e "s|^global\$|global\\n    log stdout format raw local0|" \
      -e "s|^defaults\$|defaults\\n    log global\\n    option httplog|" "$RUN/haproxy-proxy.cfg"
    grep -q "option httplog" "$RUN/haproxy-proxy.cfg" || die "--access-log: the HAProxy template's sections changed"
    export CLAWGATE_BENCH_ACCESS_LOG=access.log
  fi
  nginx -t -q -p "$RUN" -c "$RUN/nginx-proxy.conf" -g 'daemon off;' || die "nginx's edited config failed its test"
  bench_start nginx "$PROXY_CPU" nginx -p "$RUN" -c "$RUN/nginx-proxy.conf" -g 'daemon off;'
  wait_port "$NGINX_PORT" 10 "$PID_nginx" || die "nginx did not start: $(tail -5 "$RUN/nginx.log")"
  haproxy -c -q -f "$RUN/haproxy-proxy.cfg" || die "HAProxy's edited config failed its check"
  bench_start haproxy "$PROXY_CPU" haproxy -db -f "$RUN/haproxy-proxy.cfg"
  wait_port "$HAPROXY_PORT" 10 "$PID_haproxy" || die "haproxy did not start: $(tail -5 "$RUN/haproxy.log")"
else
  start_nginx_proxy
  start_haproxy_proxy
fi
start_extra_cmd clawgate http://127.0.0.1:19010/ "$here/clawgate-bench.sh"

declare -A URL=([nginx]="$scheme://127.0.0.1:$NGINX_PORT/" [haproxy]="$scheme://127.0.0.1:$HAPROXY_PORT/"
                [clawgate]=$scheme://127.0.0.1:19010/)
# nginx's master only waits: its (one) worker does the work.
declare -A PID=([nginx]=$(ps --ppid "$PID_nginx" -o pid= | head -n1 | tr -d ' ')
                [haproxy]=$PID_haproxy [clawgate]=$PID_x_clawgate)
if [ "$pgo" = 1 ]; then
  CLAWGATE_BIN=$root/target/pgo/release/clawgate start_extra_cmd pgo http://127.0.0.1:19020/ "$here/clawgate-bench.sh"
  URL[pgo]=$scheme://127.0.0.1:19020/ PID[pgo]=$PID_x_pgo
fi
if [ "$floor" = 1 ]; then
  l4_port=19030
  port_busy $l4_port && die "--floor: port $l4_port for the TCP relay is already in use"
  l4_bind=""
  [ "$tls" = 1 ] && l4_bind=" ssl crt $RUN/server-full.pem alpn http/1.1"
  cat >"$RUN/haproxy-l4.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client  60s
    timeout server  60s
frontend l4
    bind 127.0.0.1:$l4_port$l4_bind
    default_backend upstream
backend upstream
    server upstream 127.0.0.1:$UPSTREAM_PORT
CFG
  haproxy -c -q -f "$RUN/haproxy-l4.cfg" || die "--floor: the TCP relay's config failed its check"
  bench_start l4 "$PROXY_CPU" haproxy -db -f "$RUN/haproxy-l4.cfg"
  wait_port $l4_port 10 "$PID_l4" || die "--floor: the TCP relay did not start: $(tail -5 "$RUN/l4.log")"
  URL[l4]=$scheme://127.0.0.1:$l4_port/ PID[l4]=$PID_l4
  only="$only l4"
fi
# ticks PID -> "utime stime" (clock ticks, all threads)
ticks() { local s; s=$(cat "/proc/$1/stat"); s=${s##*) }; set -- $s; echo "${12} ${13}"; }
# steal N -> ticks the hypervisor gave CPU N's time to someone else (/proc/stat's
# 8th value). This VM's slow rounds are the ones where it is high, so each row
# shows it: a round that ran at a third of the usual speed says why.
steal() { awk -v c="cpu$1" '$1 == c { print $9; exit }' /proc/stat; }

# one TARGET MODE ROUND: a wrk run, one table row
one() {
  local t=$1 m=$2 r=$3 pid=${PID[$1]} auth="Bearer $BENCH_TOKEN" origin=$BENCH_ORIGIN_OK
  local u0 s0 u1 s1 perf_pid="" out n sc=0 cs=0 p50 p99 w0 w1 up0 up1 lc0 lc1 sp0 sl0 sp1 sl1 t0 t1
  # The relay refuses nothing: its deny and origin runs would be allows.
  [ "$t" = l4 ] && [ "$m" != allow ] && return 0
  [ "$m" = deny ] && auth="Bearer wrong-$BENCH_TOKEN"
  [ "$m" = origin ] && origin=https://evil.example.net
  read -r u0 s0 < <(ticks "$pid")
  w0=$(self_child_ticks); up0=$(tree_ticks "$PID_upstream"); lc0=$(cpu_busy "$LOAD_CPU")
  sp0=$(steal "$PROXY_CPU"); sl0=$(steal "$LOAD_CPU"); t0=$(date +%s%N)
  if [ "$use_perf" = 1 ]; then
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$pid" -o "$RUN/perf.$t" \
      -- sleep "$((duration + 1))" &
    perf_pid=$!
    sleep 0.5
  fi
  out=$(BENCH_AUTH="$auth" BENCH_ORIGIN="$origin" timeout -k 5 $((duration + 30)) \
        taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"${duration}s" --timeout 5s \
        -s "$shared/lib/wrk-report.lua" "${URL[$t]}" 2>&1 | grep '^RESULT ' || true)
  lc1=$(cpu_busy "$LOAD_CPU"); up1=$(tree_ticks "$PID_upstream"); w1=$(self_child_ticks)
  sp1=$(steal "$PROXY_CPU"); sl1=$(steal "$LOAD_CPU"); t1=$(date +%s%N)
  [ -z "$perf_pid" ] || wait "$perf_pid"
  read -r u1 s1 < <(ticks "$pid")
  n=$(printf '%s' "$out" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
  [ -n "$n" ] && [ "$n" -gt 0 ] || { log "wrk failed for $t ($m)"; return 0; }
  p50=$(printf '%s' "$out" | sed -n 's/.* p50_us=\([0-9]*\).*/\1/p')
  p99=$(printf '%s' "$out" | sed -n 's/.* p99_us=\([0-9]*\).*/\1/p')
  if [ "$use_perf" = 1 ]; then
    sc=$(awk -F, '$3 ~ /sys_enter/ {print $1}' "$RUN/perf.$t")
    cs=$(awk -F, '$3 ~ /context-switches/ {print $1}' "$RUN/perf.$t")
  fi
  awk -v t="$t" -v m="$m" -v r="$r" -v n="$n" -v d="$duration" -v u=$((u1 - u0)) -v s=$((s1 - s0)) \
      -v hz="$CLK_TCK" -v sc="$sc" -v cs="$cs" -v p50="${p50:-0}" -v p99="${p99:-0}" \
      -v w=$((w1 - w0)) -v up=$((up1 - up0)) -v lc=$((lc1 - lc0)) \
      -v sp=$((sp1 - sp0)) -v sl=$((sl1 - sl0)) -v wall=$((t1 - t0)) 'BEGIN {
    us = 1e6 / hz / n
    pct = 100 * 1e9 / hz / wall
    printf "%-9s %-7s %5d %9.0f %8.2f %8.2f %8.2f %9.2f %9.3f %7d %7d %7.2f %7.2f %7.2f %6.1f %6.1f\n", t, m, r, n / d, u * us, s * us, (u + s) * us, sc / n, cs / n, p50, p99, w * us, up * us, lc * us, sp * pct, sl * pct
  }' | tee -a "$RUN/rows" >&2
}

: >"$RUN/rows"
read -ra targets <<<"$only"
for ((r = 1; r <= rounds; r++)); do
  for m in $modes; do
    for ((i = 0; i < ${#targets[@]}; i++)); do
      one "${targets[(i + r - 1) % ${#targets[@]}]}" "$m" "$r"
    done
  done
done

echo
echo "== $conns conns, $rounds rounds x ${duration}s, modes interleaved; medians per request =="
echo "   (user/kernel CPU-µs of the proxy from /proc/PID/stat; system calls and context switches from perf stat;"
echo "    the load core's side: wrk's CPU-µs (this shell's reaped children), the upstream's, and CPU $LOAD_CPU's busy µs;"
echo "    st_px% / st_ld%: the share of the run's wall time the hypervisor took from the proxy's / the load core)"
# the medians table's columns, for its header and its rows alike
row_fmt='%-9s %-7s %9s %8s %8s %8s %9s %9s %7s %7s %7s %7s %7s %6s %6s %9s\n'
# shellcheck disable=SC2059
printf "$row_fmt" target mode req/s user_us sys_us cpu_us syscalls ctxsw p50_us p99_us wrk_us up_us load_us st_px% st_ld% rps/allow
for t in $only; do
  allow_rps=""
  for m in $modes; do
    row=$(awk -v t="$t" -v m="$m" '$1 == t && $2 == m' "$RUN/rows" | awk '
      # one format per measured column of a row (4: req/s ... 16: st_ld%)
      BEGIN { nf = split("%.0f %.2f %.2f %.2f %.2f %.3f %.0f %.0f %.2f %.2f %.2f %.1f %.1f", f, " ") }
      { for (c = 1; c <= nf; c++) v[c, NR] = $(c + 3) }
      END {
        if (NR == 0) exit
        for (c = 1; c <= nf; c++) {
          n = 0; for (i = 1; i <= NR; i++) a[++n] = v[c, i]
          for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
          fmt = (c > 1 ? " " : "") f[c]
          printf fmt, (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
      }')
    [ -n "$row" ] || continue
    set -- $row
    [ "$m" = allow ] && allow_rps=$1
    ratio=-
    [ -n "$allow_rps" ] && ratio=$(awk -v a="$1" -v b="$allow_rps" 'BEGIN { printf "%.2f", a / b }')
    # shellcheck disable=SC2059
    printf "$row_fmt" "$t" "$m" "$@" "$ratio"
  done
done
if [ "$use_perf" = 1 ]; then
  echo "(perf counts span the wrk run plus ~1.5 s around it; idle system calls (timers, config polling) are a few dozen a second, noise at these rates)"
else
  echo "(--no-perf: system calls and context switches not counted)"
fi
echo "(rps/allow: this mode's median req/s over the allow mode's, same target; list allow first in --modes)"

# Issue #8's targets, each ratio taken within a round, median over rounds.
echo
if [ "$tls" = 1 ] || [ "$access_log" = 1 ]; then
  [ "$tls" = 1 ] && echo "== over HTTPS (--tls): issue #8's ratios, which it sets for plain HTTP, per round, median [lowest-highest] over $rounds rounds =="
  [ "$access_log" = 1 ] && echo "== every proxy logging every request (--access-log): issue #8's ratios, which it sets for the harness's job (no logs), per round, median [lowest-highest] over $rounds rounds =="
else
  echo "== issue #8 targets in this run: ratio per round, median [lowest-highest] over $rounds rounds =="
fi
awk -v perf="$use_perf" -v pgo="$pgo" -v floor="$floor" '
  { rps[$1, $2, $3] = $4; cpu[$1, $2, $3] = $7; p99[$1, $2, $3] = $11; if ($3 > last) last = $3 }
  function verdict(name, a, am, b, bm, col, want, cmp,    r, n, i, j, x, v, lo, hi, med) {
    n = 0
    for (r = 1; r <= last; r++) {
      if (col == "rps") { x = rps[a, am, r]; v = rps[b, bm, r] }
      else if (col == "cpu") { x = cpu[a, am, r]; v = cpu[b, bm, r] }
      else { x = p99[a, am, r]; v = p99[b, bm, r] }
      if (x > 0 && v > 0) q[++n] = x / v
    }
    if (n == 0) return
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (q[j] < q[i]) { x = q[i]; q[i] = q[j]; q[j] = x }
    med = (n % 2) ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2
    if (cmp == "") { printf "%-44s %6.2fx  [%.2f-%.2f]\n", name, med, q[1], q[n]; return }
    met = (cmp == "le") ? (med <= want) : (med >= want)
    printf "%-44s %6.2fx  [%.2f-%.2f]  target %s %.2fx: %s\n", name, med, q[1], q[n], (cmp == "le") ? "<=" : ">=", want, met ? "met" : "MISSED"
  }
  function verdicts(c, label) {
    if (label != "") print label
    verdict("allow: CPU per request, clawgate / nginx", c, "allow", "nginx", "allow", "cpu", 0.8, "le")
    verdict("allow: CPU per request, clawgate / HAProxy", c, "allow", "haproxy", "allow", "cpu", 0.8, "le")
    verdict("allow: throughput, clawgate / nginx", c, "allow", "nginx", "allow", "rps", 1.2, "ge")
    verdict("allow: p99 latency, clawgate / nginx", c, "allow", "nginx", "allow", "p99", 1.0, "le")
    verdict("wrong token: throughput / own allow", c, "deny", c, "allow", "rps", 2.0, "ge")
    verdict("bad Origin: throughput / own allow", c, "origin", c, "allow", "rps", 2.0, "ge")
  }
  END {
    verdicts("clawgate", pgo ? "clawgate, default build (cargo build --release):" : "")
    if (pgo) verdicts("pgo", "clawgate, profile-guided build (benches/load/pgo.sh):")
    if (floor) {
      print "the floor, HAProxy as a bare TCP relay (--floor; no target, for reading the ones above):"
      verdict("allow: CPU per request, TCP relay / nginx", "l4", "allow", "nginx", "allow", "cpu")
      verdict("allow: CPU per request, TCP relay / HAProxy", "l4", "allow", "haproxy", "allow", "cpu")
      verdict("allow: CPU per request, clawgate / TCP relay", "clawgate", "allow", "l4", "allow", "cpu")
      if (pgo) verdict("allow: CPU per request, PGO build / TCP relay", "pgo", "allow", "l4", "allow", "cpu")
      verdict("allow: throughput, TCP relay / nginx", "l4", "allow", "nginx", "allow", "rps")
    }
    if (perf) print "(perf was attached: its tracepoint adds kernel time per system call; --no-perf for the CPU verdict)"
  }' "$RUN/rows"
if [ "$access_log" = 1 ]; then
  # A log that kept up is part of the result: clawgate drops lines (and
  # counts them) rather than stall a request when its writer falls behind.
  dropped=$(curl -s --max-time 5 "http://127.0.0.1:19110/metrics" | awk '$1 == "clawgate_access_log_dropped_lines" { print $2 }')
  echo "clawgate access-log lines dropped in the whole run: ${dropped:-unknown}"
fi
