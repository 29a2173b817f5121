#!/usr/bin/env bash
# End-to-end: the real OpenClaw gateway and its real CLI through clawgate.
#
#   tests/e2e/openclaw_cli.sh path/to/clawgate
#
# Starts, all in a temp dir that is removed on exit:
#   - the real gateway (npm `openclaw`, Node 24) on 127.0.0.1:<free port> in
#     trusted-proxy mode, with DNS pinned to loopback so it cannot reach out;
#   - clawgate with TLS on the host side of a veth (10.203.0.1:8443);
#   - the member CLI inside a network namespace (10.203.0.2), because the
#     gateway refuses a forwarded client address that is loopback.
# Asserts (a) alice with a valid token connects, gets exactly the scopes of
# her SCOPES line and the gateway logs user=alice; (b) a wrong token gets
# 401 and the CLI fails; (c) bob, whose EGRESS_CIDRS excludes the namespace
# address, gets 403 and the CLI fails; plus the Origin 403 and a missing
# token. Ends with "N passed, N failed"; exit 0 only when nothing failed.
# Needs root (netns, veth, mount namespace). See tests/e2e/NOTES.md.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLAWGATE_ARG="${1:-}"
BUDGET_S="${CLAWGATE_E2E_BUDGET:-600}"   # hard cap on the whole run
PASS=0 FAIL=0
ok()   { PASS=$((PASS + 1)); echo "ok - $*"; }
nok()  { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else nok "$name"; fi; }
log()  { echo "# $*"; }
setup() { echo "# setup: $*"; }   # a precondition met: not a test, not in the tally
finish() { echo "$PASS passed, $FAIL failed"; [[ $FAIL -eq 0 ]]; }
fatal() { nok "$*"; exit 1; }   # the EXIT trap cleans up and prints the tally

# ---------------------------------------------------------------- cleanup ---
TMP="" GW_PID="" CG_PID="" WATCHDOG_PID="" NETNS_UP=0
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
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_group "$CG_PID" clawgate
  stop_group "$GW_PID" gateway
  if [[ $NETNS_UP == 1 ]]; then netns_down || log "netns_down failed"; fi
  if [[ -n "$WATCHDOG_PID" ]]; then
    kill -TERM -- "-$WATCHDOG_PID" 2>/dev/null || kill -TERM "$WATCHDOG_PID" 2>/dev/null
    wait "$WATCHDOG_PID" 2>/dev/null
  fi
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    if [[ $FAIL -gt 0 || -n "${CLAWGATE_E2E_KEEP:-}" ]]; then
      for f in gateway.out clawgate.out; do
        [[ -f "$TMP/$f" ]] && { log "--- last lines of $f"; tail -n 25 "$TMP/$f" | sed 's/^/#   /'; }
      done
    fi
    if [[ -n "${CLAWGATE_E2E_KEEP:-}" ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  finish
  local frc=$?
  [[ $rc -ne 0 ]] && exit "$rc"
  exit "$frc"
}
trap cleanup EXIT
trap 'nok "interrupted (signal, or the ${BUDGET_S}s budget ran out)"; exit 130' INT TERM

# ---------------------------------------------------------- preconditions ---
[[ -n "$CLAWGATE_ARG" ]] || fatal "usage: $0 path/to/clawgate"
CLAWGATE="$(cd "$(dirname "$CLAWGATE_ARG")" 2>/dev/null && pwd)/$(basename "$CLAWGATE_ARG")"
[[ -x "$CLAWGATE" ]] || fatal "clawgate binary not executable: $CLAWGATE_ARG"
[[ $(id -u) -eq 0 ]] || fatal "needs root (ip netns, veth, unshare -m)"
for tool in ip openssl curl jq unshare setsid timeout sha256sum; do
  command -v "$tool" >/dev/null || fatal "missing tool: $tool (tests/e2e/install.sh installs them)"
done

# Watchdog: whatever hangs, the run ends within the budget.
# Its own process group (killed as a group on exit), detached from stdio, so
# its `sleep` neither outlives the run nor holds a caller's pipe open.
setsid bash -c 'sleep "$1"; kill -TERM "$2"' watchdog "$BUDGET_S" $$ >/dev/null 2>&1 </dev/null &
WATCHDOG_PID=$!

INSTALL_OUT="$(timeout 1800 bash "$HERE/install.sh")" || fatal "install.sh failed"
NODE="$(sed -n 's/^NODE=//p' <<<"$INSTALL_OUT")"
OPENCLAW="$(sed -n 's/^OPENCLAW=//p' <<<"$INSTALL_OUT")"
[[ -x "$NODE" && -x "$OPENCLAW" ]] || fatal "install.sh printed no NODE=/OPENCLAW= paths"
NODE_BIN_DIR="$(dirname "$OPENCLAW")"   # holds `node` (Node 24) and `openclaw`
log "node $("$NODE" --version), $("$OPENCLAW" --version 2>/dev/null | head -1)"

# Network namespace (sourced: netns_up / netns_down / netns_exec).
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

free_port() {  # a free TCP port on 127.0.0.1, chosen by the kernel
  "$NODE" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
GW_PORT="$(free_port)" ADMIN_PORT="$(free_port)"
[[ "$GW_PORT" =~ ^[0-9]+$ && "$ADMIN_PORT" =~ ^[0-9]+$ && "$GW_PORT" != "$ADMIN_PORT" ]] || fatal "no free loopback ports"

# ---------------------------------------------------------------- secrets ---
rand() { openssl rand -hex 24; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
ALICE_TOKEN="cg_$(rand)" BOB_TOKEN="cg_$(rand)" WRONG_TOKEN="cg_$(rand)"

# ------------------------------------------------------ clawgate config -----
CG="$TMP/clawgate"
mkdir -p "$CG/tls" "$CG/members"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=clawgate-e2e" -addext "subjectAltName=IP:$LISTEN_IP" \
  -keyout "$CG/tls/server.key" -out "$CG/tls/server.crt" 2>"$TMP/openssl.err" \
  || fatal "openssl: $(cat "$TMP/openssl.err")"
chmod 600 "$CG/tls/server.key"
# SHA-256 of the DER certificate, as AA:BB:...; the CLI accepts this or bare hex.
FINGERPRINT="$(openssl x509 -in "$CG/tls/server.crt" -noout -fingerprint -sha256 | cut -d= -f2)"

cat >"$CG/clawgate.toml" <<EOF
[listen]
addr = "$LISTEN_IP:$LISTEN_PORT"
tls_cert = "tls/server.crt"
tls_key = "tls/server.key"
[admin]
addr = "127.0.0.1:$ADMIN_PORT"
[upstreams.prod]
url = "http://127.0.0.1:$GW_PORT"
[client_ip]
trusted_proxies = []
[members]
dir = "members"
EOF
# alice: may come from the namespace; scope cap read+write (no admin).
cat >"$CG/members/alice.env" <<EOF
TOKEN_SHA256=$(sha "$ALICE_TOKEN")
ORIGINS="none https://gw.example.test"
EGRESS_CIDRS="10.203.0.0/30"
SCOPES="operator.read,operator.write"
EOF
# bob: valid token, but only allowed from 192.0.2.0/24 (TEST-NET-1), which
# excludes the namespace address: clawgate must answer 403.
cat >"$CG/members/bob.env" <<EOF
TOKEN_SHA256=$(sha "$BOB_TOKEN")
ORIGINS="none"
EGRESS_CIDRS="192.0.2.0/24"
SCOPES="operator.read"
EOF
chmod 600 "$CG/members/"*.env

# ------------------------------------------------------- gateway config -----
GW="$TMP/gateway"
mkdir -p "$GW/home" "$GW/state"
# identityScopes GRANTS scopes (the CLI's unpaired device has none of its
# own); x-openclaw-scopes only NARROWS them. alice is granted admin here on
# purpose: the session must still end with read+write only, which proves
# clawgate sends her SCOPES cap on the upgrade.
cat >"$GW/openclaw.json5" <<EOF
{
  gateway: {
    mode: "local",
    bind: "loopback",
    port: $GW_PORT,
    trustedProxies: ["127.0.0.1"],
    auth: {
      mode: "trusted-proxy",
      identityScopes: {
        alice: ["operator.read", "operator.write", "operator.admin"],
        bob: ["operator.read"],
      },
      trustedProxy: {
        userHeader: "x-forwarded-user",
        allowLoopback: true,
        allowUsers: ["alice", "bob"],
        deviceAutoApprove: { enabled: true },
      },
    },
    controlUi: { allowedOrigins: ["https://gw.example.test"] },
  },
  // Keep the gateway off the network: only this machine is reachable.
  update: { checkOnStart: false },
  models: { catalogRefresh: { enabled: false } },
  discovery: { mdns: { mode: "off" } },
  cron: { enabled: false },
  plugins: { enabled: false },
  logging: { file: "$GW/gateway.jsonl" },
}
EOF
# DNS inside the gateway's mount namespace points at loopback: a lookup the
# config above did not switch off (e.g. clawhub.ai on status) fails locally.
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$GW/resolv.conf"

gw_env=(env -i PATH="$NODE_BIN_DIR:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$GW/home"
  OPENCLAW_HOME="$GW/home" OPENCLAW_STATE_DIR="$GW/state" OPENCLAW_CONFIG_PATH="$GW/openclaw.json5"
  OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_SKIP_CHANNELS=1
  OPENCLAW_CLAWHUB_URL="http://127.0.0.1:9" NO_COLOR=1 TERM=dumb)

log "starting gateway on 127.0.0.1:$GW_PORT"
T0=$(date +%s)
setsid "${gw_env[@]}" unshare -m sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' \
  "$GW/resolv.conf" "$OPENCLAW" gateway run --port "$GW_PORT" >"$TMP/gateway.out" 2>&1 </dev/null &
GW_PID=$!
[[ -n "${CLAWGATE_E2E_PIDFILE:-}" ]] && echo "$GW_PID" >>"$CLAWGATE_E2E_PIDFILE"   # run.sh's last resort

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
gw_ready() { alive "$GW_PID" && curl -sf -m 2 "http://127.0.0.1:$GW_PORT/readyz"; }
wait_for 120 "gateway /readyz" gw_ready || fatal "gateway ready on 127.0.0.1:$GW_PORT"
setup "gateway ready in $(( $(date +%s) - T0 ))s (trusted-proxy, 127.0.0.1:$GW_PORT)"

# ----------------------------------------------------------- clawgate -------
log "starting clawgate on $LISTEN_IP:$LISTEN_PORT (admin 127.0.0.1:$ADMIN_PORT)"
setsid "$CLAWGATE" run --config "$CG" >"$TMP/clawgate.out" 2>&1 </dev/null &
CG_PID=$!
[[ -n "${CLAWGATE_E2E_PIDFILE:-}" ]] && echo "$CG_PID" >>"$CLAWGATE_E2E_PIDFILE"
cg_ready() {
  alive "$CG_PID" || return 1
  # Any HTTP answer on the TLS listener from inside the namespace will do.
  netns_exec curl -sk -m 2 -o /dev/null -w '%{http_code}' "https://$LISTEN_IP:$LISTEN_PORT/" | grep -q '^[1-5][0-9][0-9]$'
}
wait_for 30 "clawgate listener" cg_ready || fatal "clawgate listening on $LISTEN_IP:$LISTEN_PORT"
setup "clawgate listening with TLS on $LISTEN_IP:$LISTEN_PORT"

# --------------------------------------------------------- the member CLI ---
# One config per member, in the format a member would use. The token comes
# from an env SecretRef and travels as X-Clawgate-Token on the wss upgrade.
# auth.mode "none": the member holds no gateway credential (clawgate's edge
# identity is the credential); without it `health`/`call` refuse to connect.
make_cli_config() {  # make_cli_config DIR
  mkdir -p "$1/state"
  cat >"$1/openclaw.json5" <<EOF
{
  gateway: {
    mode: "remote",
    auth: { mode: "none" },
    remote: {
      transport: "direct",
      url: "wss://$LISTEN_IP:$LISTEN_PORT",
      tlsFingerprint: "$FINGERPRINT",
      edgeAuth: {
        "X-Clawgate-Token": { source: "env", provider: "default", id: "CLAWGATE_TOKEN" },
      },
    },
  },
}
EOF
}
CLI="$TMP/cli"
make_cli_config "$CLI"
cli() {  # cli TOKEN OPENCLAW-ARGS...: run the CLI in the namespace, 90 s max
  local token="$1"; shift
  netns_exec env -i PATH="$NODE_BIN_DIR:/usr/bin:/bin" HOME="$CLI" USER=member \
    OPENCLAW_HOME="$CLI" OPENCLAW_STATE_DIR="$CLI/state" OPENCLAW_CONFIG_PATH="$CLI/openclaw.json5" \
    OPENCLAW_DISABLE_BONJOUR=1 NO_COLOR=1 TERM=dumb CLAWGATE_TOKEN="$token" \
    timeout 90 "$OPENCLAW" "$@" </dev/null
}
gw_user_lines() { grep -c "authenticated user connected conn=.* user=$1\$" "$TMP/gateway.out" 2>/dev/null || true; }
jq_body() { jq -e "$@" "$TMP/body" >/dev/null 2>&1; }  # jq_body [ARGS] FILTER: test the last body
curl_ns() {  # curl_ns ARGS...: HTTPS to clawgate from the namespace, prints the status
  netns_exec curl -sk -m 10 -o "$TMP/body" -w '%{http_code}' "$@" "https://$LISTEN_IP:$LISTEN_PORT/"
}

# (a) alice connects -------------------------------------------------------
before=$(gw_user_lines alice)
cli "$ALICE_TOKEN" gateway probe --json --timeout 8000 >"$TMP/probe.json" 2>"$TMP/probe.err"
probe_rc=$?
remote() { jq -e "[.targets[] | select(.kind == \"configRemote\")][0] | $1" "$TMP/probe.json" >/dev/null 2>&1; }
check "(a) alice: openclaw gateway probe exits 0 (rc=$probe_rc)" test "$probe_rc" -eq 0
check "(a) alice: probe Connect ok and Read probe ok through clawgate" remote '.connect.ok == true and .connect.rpcOk == true'
check "(a) alice: session scopes are exactly SCOPES (operator.read,operator.write)" \
  remote '(.auth.scopes | sort) == ["operator.read","operator.write"]'
if ! remote '.connect.ok == true'; then
  log "probe said: $(jq -c '[.targets[] | {kind, connect}]' "$TMP/probe.json" 2>/dev/null || head -c 600 "$TMP/probe.json" "$TMP/probe.err")"
fi
cli "$ALICE_TOKEN" gateway call status >"$TMP/status.out" 2>&1
check "(a) alice: openclaw gateway call status (operator.read) succeeds" test $? -eq 0
cli "$ALICE_TOKEN" gateway health >"$TMP/health.out" 2>&1
check "(a) alice: openclaw gateway health succeeds" test $? -eq 0
cli "$ALICE_TOKEN" gateway call exec.approvals.get >"$TMP/admin.out" 2>&1
admin_rc=$?
check "(a) alice: an operator.admin call is refused (SCOPES caps identityScopes)" \
  eval '[[ $admin_rc -ne 0 ]] && grep -q "missing scope: operator.admin" "$TMP/admin.out"'
gw_logged_alice() { [[ $(gw_user_lines alice) -gt $before ]]; }
check "(a) gateway log: 'authenticated user connected ... user=alice'" wait_for 10 "user=alice in gateway log" gw_logged_alice

# (b) wrong or missing token -> 401 ------------------------------------------
before_any=$(grep -c "authenticated user connected" "$TMP/gateway.out" 2>/dev/null || true)
cli "$WRONG_TOKEN" gateway call status >"$TMP/wrong.out" 2>&1
wrong_rc=$?
check "(b) wrong token: CLI fails with 'rejected websocket upgrade (HTTP 401)'" \
  eval '[[ $wrong_rc -ne 0 ]] && grep -q "HTTP 401" "$TMP/wrong.out"'
code=$(curl_ns -H "X-Clawgate-Token: $WRONG_TOKEN")
check "(b) wrong token in X-Clawgate-Token: 401 (got $code)" test "$code" = 401
code=$(curl_ns -H "Authorization: Bearer $WRONG_TOKEN")
check "(b) wrong token in Authorization: Bearer: 401 (got $code)" test "$code" = 401
code=$(curl_ns)
check "(b) no token: 401 (got $code)" test "$code" = 401
code=$(curl_ns -H "Authorization: Bearer $ALICE_TOKEN")
# Only the gateway's own success counts: a 502 or 504 is clawgate failing
# to reach it, not the token being accepted.
check "alice's token in Authorization: Bearer is accepted: the gateway answers 2xx (got $code)" \
  eval '[[ $code =~ ^2[0-9][0-9]$ ]]'
check "(b) nothing reached the gateway as a user for the wrong token" \
  eval '[[ $(grep -c "authenticated user connected" "$TMP/gateway.out" 2>/dev/null || true) -eq $before_any ]]'

# (c) bob's EGRESS_CIDRS exclude the namespace -> 403 ------------------------
cli "$BOB_TOKEN" gateway call status >"$TMP/bob.out" 2>&1
bob_rc=$?
check "(c) bob from $CLIENT_IP: CLI fails with 'rejected websocket upgrade (HTTP 403)'" \
  eval '[[ $bob_rc -ne 0 ]] && grep -q "HTTP 403" "$TMP/bob.out"'
code=$(curl_ns -H "X-Clawgate-Token: $BOB_TOKEN")
check "(c) bob from $CLIENT_IP: 403 (got $code)" test "$code" = 403
check "(c) bob's 403 body names member and presented client IP" \
  jq_body --arg ip "$CLIENT_IP" '.member == "bob" and .client_ip.presented == $ip'
check "(c) bob never reached the gateway" eval '[[ $(gw_user_lines bob) -eq 0 ]]'

# Origin not in alice's ORIGINS -> 403 with the diff --------------------------
code=$(curl_ns -H "X-Clawgate-Token: $ALICE_TOKEN" -H "Origin: https://evil.example.test")
check "alice with Origin https://evil.example.test: 403 (got $code)" test "$code" = 403
check "origin 403 body carries the origin diff" \
  jq_body '.origin.presented == "https://evil.example.test" and (.origin.allowed | length) > 0'

alive "$GW_PID"; check "gateway still running at the end" test $? -eq 0
alive "$CG_PID"; check "clawgate still running at the end" test $? -eq 0
exit 0   # the EXIT trap stops everything, removes the namespace, prints the tally
