#!/usr/bin/env bash
# ws_scale.sh: hold N idle WebSockets through clawgate, report clawgate's RSS
# per connection, and the message round trip through clawgate vs direct.
#
#   upstream: examples/ws_echo.rs on 127.0.0.1:19030 (CPU LOAD_CPU)
#   proxy:    clawgate via benches/load/clawgate-bench.sh on 127.0.0.1:19010
#             (CPU PROXY_CPU, so one tokio worker, as in compare.sh)
#   reference: nginx (if installed, unless --no-reference) on 127.0.0.1:19012
#             (CPU PROXY_CPU, like clawgate): the same token check, request
#             ID and Upgrade pass-through in front of the same echo server
#   client:   examples/ws_hold/ (CPU LOAD_CPU): reads VmRSS from
#             /proc/PID/status before, opens N WebSockets (Authorization:
#             Bearer, no Origin), reads it again while they are held (and
#             after the first half, for the cost of one more), times
#             --msgs round trips through clawgate, through nginx and
#             directly (interleaved, with the N connections still open),
#             closes all, reads RSS again. Then (with the reference) N
#             (fewer if the descriptor limit is tight) are held through
#             nginx for its worker's RSS per connection.
#
# The direct pair share one core; through a proxy each message crosses to
# the proxy's core and back twice, and on a VM waking an idle core can cost
# more than the proxy's work, so the nginx round trip is the baseline that
# tells the two apart.
#
# With --tls, clients reach clawgate (and nginx) over TLS (wss://): a CA
# and a certificate for 127.0.0.1 are made for the run (make-cert.sh), both
# proxies terminate TLS with them, and each held WebSocket carries a TLS
# session on the proxy's side (what members' browsers bring). The echo
# upstream and the direct round trip stay plain.
#
# Usage: benches/load/ws_scale.sh [--conns N] [--msgs M] [--msg-bytes B]
#                                 [--sources auto|IP,IP,...] [--no-build]
#                                 [--no-reference] [--tls] [--pgo]
#                                 [--h2] [--h2-streams S]
#   --conns     idle WebSockets to hold (default 10000, at most 60000)
#   --msgs      timed round trips per target (default 5000, at most 100000)
#   --sources   client source addresses; auto = 127.0.0.1 up to 20,000
#               connections, then 127.0.0.2, 127.0.0.3, ... (20,000 each)
#   --h2        hold the WebSockets as browsers do over an HTTP/2
#               connection that offers them (RFC 8441 extended CONNECT):
#               --h2-streams (default 250) to each h2c (or, with --tls, ALPN
#               h2) connection, so clawgate holds one client socket per 250
#               and one gateway socket per WebSocket; the timed round trips
#               and nginx's reference stay HTTP/1.1 upgrades
#   --pgo       clawgate from target/pgo/release (benches/load/pgo.sh's
#               profile-guided build; its training has no WebSockets, so
#               this shows what that build does on the paths it was not
#               trained on)
# If the hard descriptor limit cannot be raised (no CAP_SYS_RESOURCE), N is
# lowered to fit it, with a warning.
# Bounded: the client gives up after 300 s; every process started here is
# stopped by PID on exit. Loopback only.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${PROXY_CPU:=1}" "${LOAD_CPU:=0}"
: "${BENCH_TOKEN:=bench-token-6f1c2a9e4b7d40c8a3e5f0b1d2c3e4f5}"
proxy_port=${CLAWGATE_PORT:-19010}
echo_port=${WS_ECHO_PORT:-19030}
ref_port=${WS_REFERENCE_PORT:-19012}

conns=10000 msgs=5000 msg_bytes=64 sources=auto build=1 reference=1 tls=0 pgo=0 h2=0 h2_streams=250
while [ $# -gt 0 ]; do
  case $1 in
    --conns) conns=$2; shift 2 ;;
    --msgs) msgs=$2; shift 2 ;;
    --msg-bytes) msg_bytes=$2; shift 2 ;;
    --sources) sources=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --no-reference) reference=0; shift ;;
    --tls) tls=1; shift ;;
    --pgo) pgo=1; shift ;;
    --h2) h2=1; shift ;;
    --h2-streams) h2_streams=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "ws_scale.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$conns" "$msgs" "$msg_bytes" "$h2_streams"; do
  case $v in ''|*[!0-9]*) echo "ws_scale.sh: numeric option expected, got '$v'" >&2; exit 2 ;; esac
done
[ "$conns" -le 60000 ] && [ "$msgs" -le 100000 ] || { echo "ws_scale.sh: at most --conns 60000 --msgs 100000" >&2; exit 2; }

log() { printf '[ws_scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "$sources" = auto ]; then
  n=$(( (conns + 19999) / 20000 ))
  if [ "$n" -le 1 ]; then sources=127.0.0.1
  else sources=$(seq 2 $((n + 1)) | sed 's/^/127.0.0./' | paste -sd,); fi
fi

[ "$h2_streams" -ge 1 ] && [ "$h2_streams" -le 256 ] || { echo "ws_scale.sh: --h2-streams 1..256 (clawgate's streams per h2 connection)" >&2; exit 2; }
# descriptors: clawgate holds 2 per tunnel (with --h2, 1 per tunnel and 1
# per h2 connection), the client and the echo server 1
want=$((2 * conns + 4096))
need=$want
[ "$h2" = 0 ] || need=$((conns + conns / h2_streams + 1024))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  if [ "$hard" -ge "$need" ] && ! ulimit -Hn "$want" 2>/dev/null; then
    # --h2 fits: all of the limit, for nginx's reference (2 per tunnel).
    log "ulimit -Hn is $hard: enough for $conns WebSockets over h2 ($need); nginx's reference holds fewer"
    want=$hard
  elif ! ulimit -Hn "$want" 2>/dev/null; then
    # No CAP_SYS_RESOURCE (e.g. in a container): fit N to the hard limit
    # rather than fail (the marginal per-connection figure hardly depends on N).
    fit=$(( (hard - 256) / 2 ))
    log "WARNING: cannot raise the descriptor limit to $want (hard limit $hard, no CAP_SYS_RESOURCE);" \
        "clawgate needs 2 per tunnel: holding $fit instead of $conns"
    conns=$fit want=$hard
  fi
fi
ulimit -Sn "$want"
log "ulimit -n $(ulimit -n)"

if [ "$build" = 1 ]; then
  log "cargo build --release --bin clawgate --example ws_echo --example ws_hold"
  (cd "$root" && cargo build --release --bin clawgate --example ws_echo --example ws_hold)
fi
tdir=${CARGO_TARGET_DIR:-$root/target}/release
cg_bin=$tdir/clawgate
[ "$pgo" = 0 ] || cg_bin=$root/target/pgo/release/clawgate
for b in "$cg_bin" "$tdir/examples/ws_echo" "$tdir/examples/ws_hold"; do
  [ -x "$b" ] || { log "$b missing (drop --no-build; for --pgo, run benches/load/pgo.sh)"; exit 1; }
done
if pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; then
  log "WARNING: a cargo/rustc build is running; latency figures are disturbed"
fi
if [ "$reference" = 1 ] && ! command -v nginx >/dev/null; then
  log "nginx not found: no reference round trip (apt-get install nginx-light)"
  reference=0
fi
for p in "$proxy_port" "$echo_port" $([ "$reference" = 1 ] && echo "$ref_port"); do
  [ -z "$(ss -ltnH "sport = :$p")" ] || { log "port $p is busy"; exit 1; }
done

RUN=$(mktemp -d /tmp/ws-scale.XXXXXX)
PIDS=()
# shellcheck source=procs.sh
source "$here/procs.sh"
stop_all() {
  stop_pids 5 "${PIDS[@]}"
  PIDS=()
}
trap 'stop_all; rm -rf "$RUN"' EXIT
trap 'log interrupted; exit 130' INT TERM

# --tls: a throwaway CA and a server certificate for 127.0.0.1 (make-cert.sh).
scheme=ws ca_args=() ngx_listen="" ngx_tls=""
if [ "$tls" = 1 ]; then
  "$here/make-cert.sh" "$RUN" || { log "--tls: making the certificate failed"; exit 1; }
  scheme=wss
  export CLAWGATE_BENCH_TLS_CERT="$RUN/server.pem" CLAWGATE_BENCH_TLS_KEY="$RUN/server.key"
  ca_args=(--ca "$RUN/ca.pem")
  ngx_listen=" ssl"
  ngx_tls="ssl_certificate $RUN/server.pem; ssl_certificate_key $RUN/server.key;"
fi

taskset -c "$LOAD_CPU" "$tdir/examples/ws_echo" --listen "127.0.0.1:$echo_port" --lifetime-secs 900 \
  >"$RUN/echo.log" 2>&1 </dev/null &
echo_pid=$!; PIDS+=("$echo_pid")
wait_port "$echo_port" "$echo_pid" || { log "ws_echo did not start: $(tail -3 "$RUN/echo.log")"; exit 1; }

BENCH_LISTEN="127.0.0.1:$proxy_port" BENCH_UPSTREAM="http://127.0.0.1:$echo_port" \
BENCH_TOKEN="$BENCH_TOKEN" BENCH_ALLOWED_ORIGINS="https://app.example.com" \
BENCH_ALLOWED_CIDRS="127.0.0.0/8" CLAWGATE_BENCH_MAX_CONNECTIONS=$((conns + 1000)) \
CLAWGATE_BIN="$cg_bin" \
  taskset -c "$PROXY_CPU" "$here/clawgate-bench.sh" >"$RUN/clawgate.log" 2>&1 </dev/null &
cg_pid=$!; PIDS+=("$cg_pid")
wait_port "$proxy_port" "$cg_pid" || { log "clawgate did not start: $(tail -5 "$RUN/clawgate.log")"; exit 1; }
ref_args=()
if [ "$reference" = 1 ]; then
  mkdir -p "$RUN/nginx-tmp"
  cat >"$RUN/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile $want;
pid $RUN/nginx.pid;
error_log $RUN/nginx.error.log warn;
events { worker_connections $((want - 64)); }
http {
    access_log off;
    client_body_temp_path $RUN/nginx-tmp/body;
    proxy_temp_path       $RUN/nginx-tmp/proxy;
    fastcgi_temp_path     $RUN/nginx-tmp/fastcgi;
    uwsgi_temp_path       $RUN/nginx-tmp/uwsgi;
    scgi_temp_path        $RUN/nginx-tmp/scgi;
    map_hash_bucket_size 256;
    map \$http_authorization \$ws_auth_ok { default 0; "Bearer $BENCH_TOKEN" 1; }
    map \$http_upgrade \$ws_connection { default upgrade; "" ""; }
    server {
        listen 127.0.0.1:$ref_port$ngx_listen;
        $ngx_tls
        location / {
            if (\$ws_auth_ok = 0) { return 403; }
            proxy_pass http://127.0.0.1:$echo_port;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$ws_connection;
            proxy_set_header X-Request-Id \$request_id;
            proxy_read_timeout 1h;
        }
    }
}
NGINX
  taskset -c "$PROXY_CPU" nginx -p "$RUN" -c "$RUN/nginx.conf" -g 'daemon off;' \
    >"$RUN/nginx.log" 2>&1 </dev/null &
  ref_pid=$!; PIDS+=("$ref_pid")
  wait_port "$ref_port" "$ref_pid" || { log "nginx did not start: $(tail -3 "$RUN/nginx.log")"; exit 1; }
  ref_args=(--reference "$scheme://127.0.0.1:$ref_port/")
fi
sleep 0.5
log "clawgate pid $cg_pid (CPU $PROXY_CPU), ws_echo pid $echo_pid (CPU $LOAD_CPU); $conns connections ($scheme://$([ "$h2" = 0 ] || echo " as h2 streams, $h2_streams each")) from $sources"

set +e
BENCH_TOKEN="$BENCH_TOKEN" timeout -k 5 330 taskset -c "$LOAD_CPU" "$tdir/examples/ws_hold" \
  --via "$scheme://127.0.0.1:$proxy_port/" --direct "ws://127.0.0.1:$echo_port/" ${ref_args[@]+"${ref_args[@]}"} \
  ${ca_args[@]+"${ca_args[@]}"} \
  --conns "$conns" --msgs "$msgs" --msg-bytes "$msg_bytes" --pid "$cg_pid" \
  --sources "$sources" --timeout-secs 300 $([ "$h2" = 0 ] || echo "--h2-streams $h2_streams") | tee "$RUN/hold.txt"
rc=${PIPESTATUS[0]}
set -e
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$cg_pid/status" 2>/dev/null || echo '?')
threads=$(awk '/^Threads:/ {print $2}' "/proc/$cg_pid/status" 2>/dev/null || echo '?')
log "clawgate peak RSS (VmHWM) $hwm KiB, threads $threads"
if [ "$rc" != 0 ]; then
  log "ws_hold failed (exit $rc); clawgate log tail:"; tail -5 "$RUN/clawgate.log" >&2
  exit "$rc"
fi

# The same N held through nginx, for its RSS per idle WebSocket (its
# worker's, as clawgate's is its process's), after clawgate's are closed.
ngx_per=0 ngx_marg=0
if [ "$reference" = 1 ]; then
  ngx_worker=$(ps --ppid "$ref_pid" -o pid= | head -n1 | tr -d ' ')
  # nginx counts both of a tunnel's descriptors against worker_connections
  # and needs slack beyond them (with 2N + 64 it began reusing connections
  # near 9,350 of 9,872), so it holds fewer when the limit is tight.
  ngx_conns=$(( conns < (want - 2048) / 2 ? conns : (want - 2048) / 2 ))
  if [ -n "$ngx_worker" ]; then
    log "holding $ngx_conns through nginx (worker pid $ngx_worker) for its RSS per connection"
    set +e
    BENCH_TOKEN="$BENCH_TOKEN" timeout -k 5 330 taskset -c "$LOAD_CPU" "$tdir/examples/ws_hold" \
      --via "$scheme://127.0.0.1:$ref_port/" --direct "ws://127.0.0.1:$echo_port/" \
      ${ca_args[@]+"${ca_args[@]}"} \
      --conns "$ngx_conns" --msgs 100 --msg-bytes "$msg_bytes" --pid "$ngx_worker" \
      --sources "$sources" --timeout-secs 300 >"$RUN/hold-nginx.txt" 2>&1
    ngx_rc=$?
    set -e
    grep -E '^(proxy RSS|opened)' "$RUN/hold-nginx.txt" | sed 's/^/  nginx: /' >&2
    if [ "$ngx_rc" = 0 ]; then
      ngx_per=$(sed -n 's/^RESULT conns=.* rss_per_conn_bytes=\([0-9]*\).*/\1/p' "$RUN/hold-nginx.txt")
      ngx_marg=$(sed -n 's/^RESULT conns=.* rss_marginal_per_conn_bytes=\([0-9]*\).*/\1/p' "$RUN/hold-nginx.txt")
    else
      log "holding through nginx failed (exit $ngx_rc): $(grep -m1 "first error" "$RUN/hold-nginx.txt"); nginx: $(sort "$RUN/nginx.error.log" | cut -c21- | sed "s/, client.*//" | uniq -c | sort -rn | head -3)"
    fi
  fi
fi

# summary against the targets
mode="$scheme://$([ "$h2" = 0 ] || echo " as h2 streams (RFC 8441), $h2_streams per connection")"
awk -v conns="$conns" -v scheme="$scheme" -v mode="$mode" -v ngx_per="${ngx_per:-0}" -v ngx_marg="${ngx_marg:-0}" -v ngx_conns="${ngx_conns:-0}" '
  /^RESULT conns=/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] } }
  /^RESULT msgs=/  { for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] } }
  /^RESULT ref_/   { for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] } }
  END {
    per = r["rss_per_conn_bytes"] / 1024
    printf "\n== ws_scale: %d idle WebSockets (%s) through clawgate ==\n", r["conns"], mode
    printf "RSS per connection: %.2f KiB (target <= 16 KiB: %s)\n", per, (per <= 16 ? "met" : "MISSED")
    if (r["rss_marginal_per_conn_bytes"] > 0)
      printf "  (the second half of the connections added %.2f KiB each; the rest of the average is one-time growth)\n",
        r["rss_marginal_per_conn_bytes"] / 1024
    if (ngx_per > 0)
      printf "nginx, %d held: %.2f KiB per connection (clawgate %.2fx); second half %.2f KiB each (clawgate %s)\n",
        ngx_conns, ngx_per / 1024, r["rss_per_conn_bytes"] / ngx_per, ngx_marg / 1024,
        (ngx_marg > 0 && r["rss_marginal_per_conn_bytes"] > 0 \
          ? sprintf("%.2fx", r["rss_marginal_per_conn_bytes"] / ngx_marg) \
          : "no growth to compare: too few connections")
    printf "round trip p50: via %.1f us, direct %.1f us (%.2fx); p99: via %.1f us, direct %.1f us (%.2fx)\n",
      r["via_p50_us"], r["direct_p50_us"], r["via_p50_us"] / r["direct_p50_us"],
      r["via_p99_us"], r["direct_p99_us"], r["via_p99_us"] / r["direct_p99_us"]
    if (r["ref_p50_us"] > 0)
      printf "through nginx, placed alike: p50 %.1f us (clawgate %.2fx), p99 %.1f us (clawgate %.2fx)\n",
        r["ref_p50_us"], r["via_p50_us"] / r["ref_p50_us"], r["ref_p99_us"], r["via_p99_us"] / r["ref_p99_us"]
  }' "$RUN/hold.txt"
