#!/usr/bin/env bash
# pgo.sh: build clawgate with profile-guided optimisation, trained on the
# proxy's own traffic, into target/pgo/release/clawgate.
#
# Why: after the allocation, copy and system-call work was cut (see
# benches/PERFORMANCE.md), the allow path's user time is flat: no function
# outside the inlined request loop is above ≈2 % of it. What is left is the
# compiler's guesses about which branches are taken and what to inline;
# a profile of real requests replaces the guesses. This is the build to
# deploy (config/examples/ install it): `.ci/run` makes it on every run and
# runs the real-OpenClaw suite on it. `cargo build --release` stays plain
# (cargo has no stable per-profile flags to keep a profile out of debug and
# test builds) and is measured beside it (syscalls.sh --pgo).
#
# Steps:
#   1. an instrumented build (RUSTFLAGS=-Cprofile-generate) in target/pgo-gen;
#   2. training: the instrumented clawgate, started by clawgate-bench.sh
#      behind an nginx upstream, serves wrk's requests for --seconds each,
#      allowed and refused, with the default limits, as a deployment runs
#      them (a flood of wrong tokens from one address gets 401 sixty times
#      a minute, then 429), plus h2load's HTTP/2 (prior knowledge);
#      then the same over TLS (keep-alive); each
#      instance stops with SIGTERM (a drained exit writes its profile).
#      Which requests, --train says:
#        mixed  (default) requests of many shapes (pgo-mix.lua): browser
#               and CLI requests with up to a dozen fields, five paths,
#               GET, HEAD, POST with a JSON body, DELETE, either credential
#               header; answers of 200, 204 and 404, "ok", 1 KB of JSON
#               and a 24 KB file; refusals of six kinds (wrong, missing or
#               Basic credentials; the scheme, port or host of Origin);
#               h2load sends a many-field GET and a POST;
#        bench  the benchmarks' own request only (GET / with a bearer token
#               and an Origin: allowed, wrong token, bad Origin; "ok").
#      Trained on mixed, the build keeps ≈90 % of bench's instruction gain
#      on the benchmarks' allowed request (benches/PERFORMANCE.md, stop
#      24): the gain does not come from training on the measured request;
#   3. llvm-profdata (rustup's llvm-tools, installed if missing) merges the
#      profiles of those runs only (not of build scripts);
#   4. the optimised build (RUSTFLAGS=-Cprofile-use) in target/pgo, with
#      the profile kept beside it (target/pgo/clawgate.profdata), so the
#      test suite can be run on the same code generation:
#        RUSTFLAGS=-Cprofile-use=$PWD/target/pgo/clawgate.profdata \
#          cargo test --release --workspace --all-targets --target-dir target/pgo
# WebSocket relaying is not trained: those paths are compiled as if cold,
# which a profile-use build does for any path its training missed.
#
# Usage: benches/load/pgo.sh [--seconds S] [--train mixed|bench]
#        (--seconds: default 4, at most 60)
# Needs: nginx (the upstream), wrk, openssl and h2load, installed from
# Debian when missing (procs.sh's debian_install). ≈9 minutes on
# 2 cores (two release builds; ≈5 when the instrumented one is still
# built). Loopback only (ports 19041-19043 and, for clawgate's admin
# listeners, 19142-19143); every process it starts is stopped by PID on
# exit; every load run is bounded in time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

seconds=4 mix=mixed
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --train) mix=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pgo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $seconds in ''|*[!0-9]*) echo "pgo.sh: --seconds takes a whole number" >&2; exit 2 ;; esac
[ "$seconds" -ge 1 ] && [ "$seconds" -le 60 ] || { echo "pgo.sh: --seconds between 1 and 60" >&2; exit 2; }
case $mix in mixed|bench) ;; *) echo "pgo.sh: --train takes mixed or bench, not '$mix'" >&2; exit 2 ;; esac
# shellcheck source=procs.sh
source "$here/procs.sh"
mapfile -t missing < <(missing_tools nginx:nginx-light wrk:wrk openssl:openssl h2load:nghttp2-client)
debian_install pgo.sh "${missing[@]}"
up_port=19041 http_port=19042 tls_port=19043
for p in $up_port $http_port $tls_port $((http_port + 100)) $((tls_port + 100)); do
  [ -z "$(ss -ltnH "sport = :$p" 2>/dev/null)" ] || { echo "pgo.sh: port $p is in use" >&2; exit 1; }
done

rustup component list --installed 2>/dev/null | grep -q '^llvm-tools' || rustup component add llvm-tools
profdata=$(find "$(rustc --print sysroot)/lib/rustlib" -name llvm-profdata -type f | head -n1)
[ -x "$profdata" ] || { echo "pgo.sh: llvm-profdata not found after 'rustup component add llvm-tools'" >&2; exit 1; }

data=$(mktemp -d /tmp/clawgate-pgo.XXXXXX)
PIDS=()
trap 'stop_pids 10 "${PIDS[@]}"; rm -rf "$data"' EXIT
# The proxy on one core and the load on the other, as the benchmarks run
# them (and as a one-core deployment runs); no pinning on one CPU.
pin_proxy=() pin_load=()
if [ "$(nproc)" -ge 2 ]; then pin_proxy=(taskset -c 1) pin_load=(taskset -c 0); fi

cd "$root"
echo "pgo.sh: 1/4 instrumented build (target/pgo-gen)" >&2
# A fixed directory for the build scripts' own profiles (never merged), so
# a second run's flags are the same and cargo reuses the build.
RUSTFLAGS="-Cprofile-generate=$root/target/pgo-gen/build-profiles" \
  cargo build --release --bin clawgate --target-dir target/pgo-gen

# The upstream: nginx over keep-alive, answering 200 "ok" at / as the
# shared bench harness's upstream does (conf/upstream-nginx.conf.tmpl),
# and for --train mixed 1 KB of JSON at /api/, 204 at
# /api/health, 404 at /api/missing/ and a 24 KB file under /assets/.
mkdir -p "$data/nginx-tmp" "$data/www/assets"
head -c 18000 /dev/urandom | base64 -w 100 >"$data/www/assets/app.js"
sessions=$(for i in $(seq 1 12); do printf '{"id":"s-%02d","title":"session %d","updated":"2026-12-0%dT10:00:00Z"},' "$i" "$i" $((i % 9 + 1)); done)
cat >"$data/upstream.conf" <<NGINX
worker_processes 1;
pid $data/upstream.pid;
error_log $data/upstream.error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $data/nginx-tmp/body;
    proxy_temp_path       $data/nginx-tmp/proxy;
    fastcgi_temp_path     $data/nginx-tmp/fastcgi;
    uwsgi_temp_path       $data/nginx-tmp/uwsgi;
    scgi_temp_path        $data/nginx-tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout  75s;
    server_tokens off;
    server {
        listen 127.0.0.1:$up_port backlog=4096;
        location / {
            default_type text/plain;
            add_header X-Seen-Request-Id \$http_x_request_id always;
            return 200 "ok";
        }
        location /api/ {
            default_type application/json;
            add_header X-Seen-Request-Id \$http_x_request_id always;
            add_header Cache-Control no-store always;
            return 200 '{"sessions":[${sessions%,}]}';
        }
        location = /api/health { return 204; }
        location /api/missing/ { return 404 "no such thing"; }
        location /assets/ { root $data/www; }
    }
}
NGINX
"${pin_load[@]}" nginx -p "$data" -c "$data/upstream.conf" -g 'daemon off;' >"$data/upstream.log" 2>&1 </dev/null &
PIDS+=($!)
wait_port $up_port "${PIDS[-1]}" 300 || { echo "pgo.sh: the upstream nginx did not start: $(tail -3 "$data/upstream.log")" >&2; exit 1; }

token=pgo-training-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ok_origin=https://app.example.com
# Each process writes its own file (%p), away from the build scripts' ones.
export LLVM_PROFILE_FILE=$data/run/clawgate-%p.profraw

# start PORT [TLS env...]: the instrumented clawgate behind the upstream
start() {
  local port=$1; shift
  env "$@" CLAWGATE_BIN="$root/target/pgo-gen/release/clawgate" CLAWGATE_BENCH_DIR="$data/cfg-$port" \
    BENCH_LISTEN=127.0.0.1:$port BENCH_UPSTREAM=http://127.0.0.1:$up_port BENCH_TOKEN="$token" \
    BENCH_ALLOWED_ORIGINS="$ok_origin,http://127.0.0.1:3000" BENCH_ALLOWED_CIDRS=127.0.0.0/8 \
    "${pin_proxy[@]}" "$here/clawgate-bench.sh" >"$data/clawgate-$port.log" 2>&1 </dev/null &
  PIDS+=($!)
  wait_port "$port" "${PIDS[-1]}" 300 || { echo "pgo.sh: clawgate did not start: $(tail -5 "$data/clawgate-$port.log")" >&2; exit 1; }
}
# train NAME URL: wrk through one instance, --seconds per kind: the
# allowed and refused mixes of pgo-mix.lua (--train mixed), or the
# benchmarks' request allowed, with a wrong token and with a bad Origin
# (--train bench)
train() {
  local name=$1 url=$2 kind script auth origin kinds=(allow deny origin)
  [ "$mix" = mixed ] && kinds=(allow deny)
  for kind in "${kinds[@]}"; do
    script=$here/pgo-mix.lua
    if [ "$mix" = bench ]; then
      auth="Bearer $token" origin=$ok_origin
      [ "$kind" = deny ] && auth="Bearer wrong-$token"
      [ "$kind" = origin ] && origin=https://evil.example.net
      script=$data/headers.lua
      printf 'wrk.headers["Authorization"] = "%s"\nwrk.headers["Origin"] = "%s"\n' "$auth" "$origin" >"$script"
    fi
    PGO_TOKEN=$token PGO_ORIGIN=$ok_origin PGO_KIND=$kind \
      timeout -k 5 $((seconds + 30)) "${pin_load[@]}" wrk -t1 -c32 -d"${seconds}s" --timeout 5s -s "$script" "$url" \
      | sed -n "s/^ *Requests\/sec: */pgo.sh:   $name $mix $kind: req\/s /p" >&2 || true
  done
}
# h2c URL: h2load over HTTP/2 with prior knowledge: the benchmarks' GET for
# --seconds, or for --train mixed a many-field GET and a POST with a body,
# half as long each
h2c() {
  local url=$1 secs=$seconds runs run
  runs=("$url")
  if [ "$mix" = mixed ]; then
    printf '{"session":"main","message":{"role":"user","content":"%s"}}' "$(head -c 300 /dev/zero | tr '\0' x)" >"$data/post.json"
    runs=("-H accept-language:en-GB -H cookie:theme=dark -H user-agent:openclaw-cli/2026.9.6 ${url}api/sessions?limit=5"
          "-d $data/post.json -H content-type:application/json ${url}api/chat")
    secs=$((seconds / 2 + 1))
  fi
  for run in "${runs[@]}"; do
    # shellcheck disable=SC2086  # each run is a list of words
    timeout -k 5 $((secs + 30)) "${pin_load[@]}" h2load -D "$secs" -c 8 -m 10 \
      -H "Authorization: Bearer $token" -H "Origin: $ok_origin" $run \
      | grep '^requests:' | sed "s/^/pgo.sh:   h2c $mix: /" >&2 || true
  done
}

echo "pgo.sh: 2/4 training ($mix) for ${seconds}s per kind of request" >&2
start $http_port
train http http://127.0.0.1:$http_port/
h2c http://127.0.0.1:$http_port/
stop_pids 10 "${PIDS[-1]}"
"$here/make-cert.sh" "$data/tls"
start $tls_port CLAWGATE_BENCH_TLS_CERT="$data/tls/server.pem" CLAWGATE_BENCH_TLS_KEY="$data/tls/server.key"
train tls https://127.0.0.1:$tls_port/
stop_pids 10 "${PIDS[-1]}"

profiles=("$data"/run/*.profraw)
echo "pgo.sh: 3/4 merging ${#profiles[@]} profiles" >&2
[ -s "${profiles[0]}" ] || { echo "pgo.sh: the instrumented clawgate wrote no profile ($data/run)" >&2; exit 1; }
"$profdata" merge -o "$data/merged.profdata" "${profiles[@]}"

echo "pgo.sh: 4/4 optimised build (target/pgo)" >&2
unset LLVM_PROFILE_FILE
mkdir -p target/pgo
cp "$data/merged.profdata" target/pgo/clawgate.profdata
RUSTFLAGS="-Cprofile-use=$root/target/pgo/clawgate.profdata" cargo build --release --bin clawgate --target-dir target/pgo
echo "pgo.sh: built $root/target/pgo/release/clawgate (profile kept in target/pgo/clawgate.profdata)" >&2
