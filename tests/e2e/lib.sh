# shellcheck shell=bash
# Shared pieces of the OpenClaw end-to-end scripts (browser.sh, revoke.sh).
# Source it after setting HERE; then call, in order:
#   e2e_init CLAWGATE_BIN        preconditions, watchdog, install, netns, temp dir
#   e2e_tls_cert                 self-signed cert for $LISTEN_IP (+ extra SANs)
#   e2e_gateway ORIGINS SCOPES   start the real gateway in trusted-proxy mode
#   e2e_clawgate                 start clawgate (after writing $CG/clawgate.toml)
# Everything started is stopped, and the namespace removed, by the EXIT trap.
# Tally: ok/nok/check; the trap prints "N passed, N failed" and exits non-zero
# when anything failed. Setup steps (`setup`) are not counted as passes:
# they only say what was set up, and a failed one is fatal. Knobs: CLAWGATE_E2E_BUDGET (s), CLAWGATE_E2E_KEEP=1,
# CLAWGATE_E2E_PORT, CLAWGATE_E2E_CACHE.

PASS=0 FAIL=0
ok()   { PASS=$((PASS + 1)); echo "ok - $*"; }
nok()  { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else nok "$name"; fi; }
log()  { echo "# $*"; }
setup() { echo "# setup: $*"; }   # a precondition met: not a test, not in the tally
fatal() { nok "$*"; exit 1; }   # the EXIT trap cleans up and prints the tally

BUDGET_S="${CLAWGATE_E2E_BUDGET:-300}"
TMP="" GW_PID="" CG_PID="" WATCHDOG_PID="" NETNS_UP=0
E2E_EXTRA_PIDS=()       # more process groups to stop (setsid'd by the caller)
E2E_EXIT_HOOKS=()       # commands run first on exit (e.g. tmux kill-server)
E2E_TAIL_FILES=(gateway.out clawgate.out access.log)   # shown on failure

stop_group() {  # stop_group PID NAME: TERM the process group, KILL after 10 s
  local pid="$1" i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$2 (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}

e2e_cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${E2E_EXIT_HOOKS[@]}"; do timeout 10 bash -c "$p" >/dev/null 2>&1 || true; done
  for p in "${E2E_EXTRA_PIDS[@]}"; do stop_group "$p" helper; done
  stop_group "$CG_PID" clawgate
  stop_group "$GW_PID" gateway
  if [[ $NETNS_UP == 1 ]]; then
    # Anything still inside the namespace (a stray browser, node) goes first.
    local left; left="$(ip netns pids "$CG_NS" 2>/dev/null)"
    if [[ -n "$left" ]]; then log "killing leftover pids in $CG_NS: $left"; kill -KILL $left 2>/dev/null; sleep 0.2; fi
    netns_down || log "netns_down failed"
  fi
  if [[ -n "$WATCHDOG_PID" ]]; then
    kill -TERM -- "-$WATCHDOG_PID" 2>/dev/null || kill -TERM "$WATCHDOG_PID" 2>/dev/null
    wait "$WATCHDOG_PID" 2>/dev/null
  fi
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    if [[ $FAIL -gt 0 || -n "${CLAWGATE_E2E_KEEP:-}" ]]; then
      for f in "${E2E_TAIL_FILES[@]}"; do
        [[ -f "$TMP/$f" ]] && { log "--- last lines of $f"; tail -n 25 "$TMP/$f" | cut -c1-400 | sed 's/^/#   /'; }
      done
    fi
    if [[ -n "${CLAWGATE_E2E_KEEP:-}" ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  echo "$PASS passed, $FAIL failed"
  [[ $rc -ne 0 ]] && exit "$rc"
  [[ $FAIL -eq 0 ]] || exit 1
  exit 0
}

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...: poll every 0.5 s
  local secs="$1" what="$2" i; shift 2
  for i in $(seq 1 $((secs * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "timed out after ${secs}s waiting for $what"
  return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
# run.sh's last resort: the process groups started here, in case this script
# is killed before its own trap runs (stopped by id, never by name).
record_pgid() { [[ -n "${CLAWGATE_E2E_PIDFILE:-}" ]] && echo "$1" >>"$CLAWGATE_E2E_PIDFILE"; return 0; }
rand() { openssl rand -hex 24; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

e2e_init() {  # e2e_init CLAWGATE_BIN
  local arg="${1:-}" tool out
  trap e2e_cleanup EXIT
  trap 'nok "interrupted (signal, or the ${BUDGET_S}s budget ran out)"; exit 130' INT TERM
  [[ -n "$arg" ]] || fatal "usage: $0 path/to/clawgate"
  CLAWGATE="$(cd "$(dirname "$arg")" 2>/dev/null && pwd)/$(basename "$arg")"
  [[ -x "$CLAWGATE" ]] || fatal "clawgate binary not executable: $arg"
  [[ $(id -u) -eq 0 ]] || fatal "needs root (ip netns, veth, unshare -m)"
  for tool in ip openssl curl jq unshare setsid timeout sha256sum; do
    command -v "$tool" >/dev/null || fatal "missing tool: $tool (tests/e2e/install.sh installs them)"
  done
  # Watchdog: whatever hangs, the run ends within the budget.
  setsid bash -c 'sleep "$1"; kill -TERM "$2"' watchdog "$BUDGET_S" $$ >/dev/null 2>&1 </dev/null &
  WATCHDOG_PID=$!

  out="$(timeout 1800 bash "$HERE/install.sh")" || fatal "install.sh failed"
  NODE="$(sed -n 's/^NODE=//p' <<<"$out")"
  OPENCLAW="$(sed -n 's/^OPENCLAW=//p' <<<"$out")"
  BROWSER_MODULES="$(sed -n 's/^BROWSER_MODULES=//p' <<<"$out")"
  CHROMIUM="$(sed -n 's/^CHROMIUM=//p' <<<"$out")"
  [[ -x "$NODE" && -x "$OPENCLAW" ]] || fatal "install.sh printed no NODE=/OPENCLAW= paths"
  NODE_BIN_DIR="$(dirname "$OPENCLAW")"   # holds `node` (Node 24) and `openclaw`

  # shellcheck source=netns.sh
  . "$HERE/netns.sh"
  LISTEN_IP="$CG_NS_HOST_IP" CLIENT_IP="$CG_NS_NS_IP" LISTEN_PORT="${CLAWGATE_E2E_PORT:-8443}"
  if ip -o addr show 2>/dev/null | grep -q " $LISTEN_IP/" && ! ip link show "$CG_NS_HOST_IF" >/dev/null 2>&1; then
    fatal "$LISTEN_IP is already configured on another interface"
  fi
  NETNS_UP=1
  netns_up || fatal "netns up ($CG_NS, $CG_NS_HOST_IF $LISTEN_IP <-> $CG_NS_PEER_IF $CLIENT_IP)"
  setup "network namespace $CG_NS up ($LISTEN_IP <-> $CLIENT_IP)"
  TMP="$(mktemp -d /tmp/clawgate-e2e.XXXXXX)"
  chmod 700 "$TMP"
  GW_PORT="$(e2e_free_port)" ADMIN_PORT="$(e2e_free_port)"
  [[ "$GW_PORT" =~ ^[0-9]+$ && "$ADMIN_PORT" =~ ^[0-9]+$ && "$GW_PORT" != "$ADMIN_PORT" ]] || fatal "no free loopback ports"
  CG="$TMP/clawgate" GW="$TMP/gateway"
  mkdir -p "$CG/tls" "$CG/members" "$GW/home" "$GW/state"
}

e2e_free_port() {  # a free TCP port on 127.0.0.1, chosen by the kernel
  "$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

e2e_tls_cert() {  # e2e_tls_cert [EXTRA_SAN...] (e.g. DNS:gw.other.test)
  local san="IP:$LISTEN_IP" s
  for s in "$@"; do san="$san,$s"; done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=clawgate-e2e" -addext "subjectAltName=$san" \
    -keyout "$CG/tls/server.key" -out "$CG/tls/server.crt" 2>"$TMP/openssl.err" \
    || fatal "openssl: $(cat "$TMP/openssl.err")"
  chmod 600 "$CG/tls/server.key"
  FINGERPRINT="$(openssl x509 -in "$CG/tls/server.crt" -noout -fingerprint -sha256 | cut -d= -f2)"
}

# The gateway: trusted-proxy mode behind clawgate (127.0.0.1), device
# auto-approval for browsers, the given Control UI origins (a JSON array),
# the given users with their identityScopes (a JSON object: user -> scopes;
# allowUsers = its keys), and everything that would reach the network off.
e2e_gateway() {  # e2e_gateway '["https://10.203.0.1:8443"]' '{"alice":["operator.read"]}'
  local origins="$1" scopes="$2" users t0
  users="$(jq -c 'keys' <<<"$scopes")" || fatal "e2e_gateway: bad scopes JSON"
  cat >"$GW/openclaw.json5" <<EOF
{
  gateway: {
    mode: "local",
    bind: "loopback",
    port: $GW_PORT,
    trustedProxies: ["127.0.0.1"],
    auth: {
      mode: "trusted-proxy",
      identityScopes: $scopes,
      trustedProxy: {
        userHeader: "x-forwarded-user",
        allowLoopback: true,
        allowUsers: $users,
        deviceAutoApprove: { enabled: true },
      },
    },
    controlUi: { allowedOrigins: $origins },
  },
  update: { checkOnStart: false },
  models: { catalogRefresh: { enabled: false } },
  discovery: { mdns: { mode: "off" } },
  cron: { enabled: false },
  plugins: { enabled: false },
  logging: { file: "$GW/gateway.jsonl" },
}
EOF
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$GW/resolv.conf"
  GW_ENV=(env -i PATH="$NODE_BIN_DIR:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$GW/home"
    OPENCLAW_HOME="$GW/home" OPENCLAW_STATE_DIR="$GW/state" OPENCLAW_CONFIG_PATH="$GW/openclaw.json5"
    OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_SKIP_CHANNELS=1
    OPENCLAW_CLAWHUB_URL="http://127.0.0.1:9" NO_COLOR=1 TERM=dumb)
  log "starting gateway on 127.0.0.1:$GW_PORT"
  t0=$(date +%s)
  setsid "${GW_ENV[@]}" unshare -m sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' \
    "$GW/resolv.conf" "$OPENCLAW" gateway run --port "$GW_PORT" >"$TMP/gateway.out" 2>&1 </dev/null &
  GW_PID=$!
  record_pgid "$GW_PID"
  wait_for 120 "gateway /readyz" e2e_gw_ready || fatal "gateway ready on 127.0.0.1:$GW_PORT"
  setup "gateway ready in $(( $(date +%s) - t0 ))s (trusted-proxy, 127.0.0.1:$GW_PORT)"
}
e2e_gw_ready() { alive "$GW_PID" && curl -sf -m 2 "http://127.0.0.1:$GW_PORT/readyz"; }

e2e_clawgate() {
  log "starting clawgate on $LISTEN_IP:$LISTEN_PORT (admin 127.0.0.1:$ADMIN_PORT)"
  setsid "$CLAWGATE" run --config "$CG" >"$TMP/clawgate.out" 2>&1 </dev/null &
  CG_PID=$!
  record_pgid "$CG_PID"
  wait_for 30 "clawgate listener" e2e_cg_ready || fatal "clawgate listening on $LISTEN_IP:$LISTEN_PORT"
  setup "clawgate listening with TLS on $LISTEN_IP:$LISTEN_PORT"
}
e2e_cg_ready() {
  alive "$CG_PID" || return 1
  netns_exec curl -sk -m 2 -o /dev/null -w '%{http_code}' "https://$LISTEN_IP:$LISTEN_PORT/" | grep -q '^[1-5][0-9][0-9]$'
}

# Does any JSON line of FILE satisfy FILTER? (`jq -e` over a stream of lines
# only judges the last one.)  jq_any FILE [--arg K V]... FILTER
jq_any() { local f="$1"; shift; jq -c "${@:1:$#-1}" "select(${!#})" "$f" 2>/dev/null | grep -q .; }
# Gateway console lines attributing a connection to a user.
gw_user_lines() { grep -c "authenticated user connected conn=.* user=$1\$" "$TMP/gateway.out" 2>/dev/null || true; }
# A Prometheus sample from clawgate's admin listener: the value of the line
# that is exactly SERIES (name{labels}) then a space. Prints nothing and
# fails when the admin listener does not answer or has no such series, so
# a "back to 0" check cannot pass with the listener down.
cg_metric() {  # cg_metric 'name{label="x"}' -> value
  local body
  body="$(curl -sf -m 3 "http://127.0.0.1:$ADMIN_PORT/metrics")" \
    || { log "cg_metric: the admin listener 127.0.0.1:$ADMIN_PORT did not answer" >&2; return 1; }
  awk -v p="$1 " 'index($0, p) == 1 { print $NF; found = 1; exit } END { exit !found }' <<<"$body" \
    || { log "cg_metric: no sample $1 on the admin listener" >&2; return 1; }
}
# metric_is SERIES VALUE: the sample exists and reads VALUE.
metric_is() {
  local v
  v="$(cg_metric "$1")" || return 1
  [[ "$v" == "$2" ]] || { log "$1 is $v, wanted $2"; return 1; }
}
# A request ID as clawgate mints them (UUIDv7); empty, "null" or anything
# else is not one, so a check that greps for it cannot match everything.
is_request_id() { [[ "$1" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]; }
