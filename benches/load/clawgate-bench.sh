#!/usr/bin/env bash
# clawgate-bench.sh: start clawgate the way the shared bench harness
# (../shared/bench/compare.sh, instr.sh) expects a proxy under test.
#
# The harness runs `bash -c "exec COMMAND"` with BENCH_LISTEN, BENCH_UPSTREAM,
# BENCH_TOKEN, BENCH_ALLOWED_ORIGINS (comma-separated) and BENCH_ALLOWED_CIDRS
# in the environment. This script turns them into a clawgate config dir:
#   clawgate.toml          listen, admin (another loopback port), one upstream,
#                          access log off (unless CLAWGATE_BENCH_ACCESS_LOG)
#   members/bench.env      mode 0600: TOKEN_SHA256 = sha256(BENCH_TOKEN),
#                          ORIGINS = the allowed origins + none (CLIs send no
#                          Origin), EGRESS_CIDRS = the allowed CIDRs
# and execs `clawgate run --config DIR`, so the harness's PID is clawgate's.
#
# Environment (optional):
#   CLAWGATE_BIN                  binary (default: target/release/clawgate)
#   CLAWGATE_BENCH_DIR            config dir (default /tmp/clawgate-bench-PORT;
#                                 recreated on every start, never the repo)
#   CLAWGATE_BENCH_ADMIN          admin addr (default 127.0.0.1:PORT+100)
#   CLAWGATE_BENCH_MAX_CONNECTIONS  [limits] max_connections (default 20000)
#   CLAWGATE_BENCH_AUTH_FAILURES    [limits] auth_failures_per_minute (default:
#                                 clawgate's, 60: a wrong-token flood from one
#                                 address gets 401 60 times, then 429 with
#                                 Retry-After; set it high to time the 401)
#   CLAWGATE_BENCH_ACCESS_LOG     [log] access (default off, as the harness's
#                                 nginx has access_log off; "stdout" or a
#                                 file name, relative to the config dir, to
#                                 time the access log too; /dev/null to
#                                 time it without the file system)
#   CLAWGATE_BENCH_TLS_CERT, CLAWGATE_BENCH_TLS_KEY
#                                 PEM files: the listener speaks TLS with them
#                                 ([listen] tls_cert, tls_key; absolute paths)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${CLAWGATE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/clawgate}

: "${BENCH_LISTEN:?BENCH_LISTEN not set (run me from the bench harness)}"
: "${BENCH_UPSTREAM:?BENCH_UPSTREAM not set}"
: "${BENCH_TOKEN:?BENCH_TOKEN not set}"
: "${BENCH_ALLOWED_ORIGINS:=}"
: "${BENCH_ALLOWED_CIDRS:=127.0.0.0/8}"

[ -x "$bin" ] || { echo "clawgate-bench: $bin not found; run cargo build --release" >&2; exit 1; }
case $BENCH_LISTEN in 127.*:*) ;; *) echo "clawgate-bench: BENCH_LISTEN must be 127.x.x.x:PORT" >&2; exit 1 ;; esac
port=${BENCH_LISTEN##*:}
case ${CLAWGATE_BENCH_ACCESS_LOG:-off} in /dev/null) ;; *'"'*|*'\\'*|/*|*..*) echo "clawgate-bench: CLAWGATE_BENCH_ACCESS_LOG must be off, stdout, /dev/null or a file name in the config dir" >&2; exit 1 ;; esac

dir=${CLAWGATE_BENCH_DIR:-/tmp/clawgate-bench-$port}
case $dir in /tmp/*) ;; *) echo "clawgate-bench: CLAWGATE_BENCH_DIR must be under /tmp" >&2; exit 1 ;; esac
rm -rf "$dir"
mkdir -p "$dir/members"
chmod 700 "$dir" "$dir/members"

token_sha=$(printf '%s' "$BENCH_TOKEN" | sha256sum | cut -c1-64)
origins="$(printf '%s' "$BENCH_ALLOWED_ORIGINS" | tr ',' ' ') none"
cidrs=$(printf '%s' "$BENCH_ALLOWED_CIDRS" | tr ',' ' ')

tls_lines=""
if [ -n "${CLAWGATE_BENCH_TLS_CERT:-}${CLAWGATE_BENCH_TLS_KEY:-}" ]; then
  for f in "${CLAWGATE_BENCH_TLS_CERT:-}" "${CLAWGATE_BENCH_TLS_KEY:-}"; do
    case $f in /*) [ -r "$f" ] || { echo "clawgate-bench: cannot read $f" >&2; exit 1; } ;;
      *) echo "clawgate-bench: CLAWGATE_BENCH_TLS_CERT and _KEY must both be absolute paths" >&2; exit 1 ;; esac
  done
  tls_lines=$(printf 'tls_cert = "%s"\ntls_key = "%s"' "$CLAWGATE_BENCH_TLS_CERT" "$CLAWGATE_BENCH_TLS_KEY")
fi

cat >"$dir/clawgate.toml" <<TOML
# written by benches/load/clawgate-bench.sh for the bench harness
[listen]
addr = "$BENCH_LISTEN"
$tls_lines

[admin]
addr = "${CLAWGATE_BENCH_ADMIN:-127.0.0.1:$((port + 100))}"

[upstreams.bench]
url = "$BENCH_UPSTREAM"

[log]
access = "${CLAWGATE_BENCH_ACCESS_LOG:-off}"

[limits]
max_connections = ${CLAWGATE_BENCH_MAX_CONNECTIONS:-20000}
TOML
if [ -n "${CLAWGATE_BENCH_AUTH_FAILURES:-}" ]; then
  case $CLAWGATE_BENCH_AUTH_FAILURES in *[!0-9]*) echo "clawgate-bench: CLAWGATE_BENCH_AUTH_FAILURES must be a number" >&2; exit 1 ;; esac
  echo "auth_failures_per_minute = $CLAWGATE_BENCH_AUTH_FAILURES" >>"$dir/clawgate.toml"
fi

umask 077
cat >"$dir/members/bench.env" <<ENV
TOKEN_SHA256=$token_sha
ORIGINS="${origins# }"
EGRESS_CIDRS="$cidrs"
ENV
chmod 600 "$dir/members/bench.env"

exec "$bin" run --config "$dir"
