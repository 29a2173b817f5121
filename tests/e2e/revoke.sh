#!/usr/bin/env bash
# End-to-end: an open connection of the real `openclaw` CLI through clawgate
# is closed when its member is removed and clawgate reloads.
#
#   tests/e2e/revoke.sh path/to/clawgate
#
# The long-lived CLI connection is `openclaw tui` (a terminal UI, run in
# tmux inside the network namespace). `openclaw logs --follow` is not one:
# it polls, one short connection per --interval (logs-cli: callGatewayFromCli
# per poll). The TUI is an operator client that the gateway only lets in with
# a paired device (deviceAutoApprove covers the Control UI and native apps,
# not the TUI), so the test pairs it the way a team would:
#   1. bob starts `openclaw tui` -> "device pairing required (requestId: R)";
#   2. ops, a member whose SCOPES include operator.admin, runs
#      `openclaw devices approve R` from the namespace, through clawgate
#      (`devices approve` on the gateway host cannot: in trusted-proxy mode
#      the gateway answers its direct loopback connection "unauthorized", and
#      the CLI's local fallback only applies to "pairing required");
#   3. bob starts the TUI again: "gateway connected", and the gateway logs
#      `[ws] authenticated user connected ... user=bob`.
# Then bob's member file is removed (clawgate watches the dir) and, in the
# same moment, carol's token is removed from hers; carol holds a plain
# WebSocket (ws_client.cjs, npm `ws`) that shows the close frame the TUI
# does not print. Asserts within 5 s: access log kind websocket, decision
# revoked (member_removed for bob, bad_token for carol), the metric
# clawgate_revoked_connections_total, the gateway's disconnect, the TUI's
# "gateway disconnected" and its refused reconnect (401), and carol's close
# code 1008 with a reason carrying her request ID (the TUI prints the reason,
# `gateway disconnected: clawgate: member_removed; request_id=...`, not the code).
# Ends with "N passed, N failed"; exit 0 only if 0 failed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init "${1:-}"
command -v tmux >/dev/null || fatal "missing tool: tmux (tests/e2e/install.sh installs it)"
[[ -n "$BROWSER_MODULES" && -d "$BROWSER_MODULES/ws" ]] || fatal "install.sh printed no BROWSER_MODULES (ws)"

BOB_TOKEN="cg_$(rand)" OPS_TOKEN="cg_$(rand)" CAROL_TOKEN="cg_$(rand)"
e2e_tls_cert
cat >"$CG/clawgate.toml" <<EOF
[listen]
addr = "$LISTEN_IP:$LISTEN_PORT"
tls_cert = "tls/server.crt"
tls_key = "tls/server.key"
[admin]
addr = "127.0.0.1:$ADMIN_PORT"
[upstreams.prod]
url = "http://127.0.0.1:$GW_PORT"
[log]
access = "$TMP/access.log"
EOF
member_env() {  # member_env TOKEN SCOPES
  printf 'TOKEN_SHA256=%s\nORIGINS="none"\nEGRESS_CIDRS="%s/32"\nSCOPES="%s"\n' "$(sha "$1")" "$CLIENT_IP" "$2"
}
member_env "$BOB_TOKEN" "operator.read,operator.write" >"$CG/members/bob.env"
member_env "$CAROL_TOKEN" "operator.read" >"$CG/members/carol.env"
member_env "$OPS_TOKEN" "operator.admin,operator.pairing,operator.read,operator.write" >"$CG/members/ops.env"
chmod 600 "$CG/members/"*.env

e2e_gateway '[]' '{"bob":["operator.read","operator.write"],"carol":["operator.read"],
  "ops":["operator.admin","operator.pairing","operator.read","operator.write"]}'
e2e_clawgate

# ------------------------------------------------------- member CLI config --
make_cli_config() {  # make_cli_config DIR (as in openclaw_cli.sh)
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
      edgeAuth: { "X-Clawgate-Token": { source: "env", provider: "default", id: "CLAWGATE_TOKEN" } },
    },
  },
}
EOF
}
make_cli_config "$TMP/bob"
make_cli_config "$TMP/ops"
cli_env() {  # cli_env DIR TOKEN: the env of a member's CLI in the namespace
  echo env -i PATH="$NODE_BIN_DIR:/usr/bin:/bin" HOME="$1" USER=member TERM=xterm-256color \
    OPENCLAW_HOME="$1" OPENCLAW_STATE_DIR="$1/state" OPENCLAW_CONFIG_PATH="$1/openclaw.json5" \
    OPENCLAW_DISABLE_BONJOUR=1 NO_COLOR=1 CLAWGATE_TOKEN="$2"
}

# The TUI in tmux, in the namespace. It refuses to start in remote mode
# without a gateway token or password ("Missing gateway auth credentials"),
# even with auth.mode "none": --token gets a placeholder, which the gateway
# in trusted-proxy mode does not use (bob is identified by clawgate).
TMUX_SOCK="$TMP/tmux.sock"
E2E_EXIT_HOOKS+=("tmux -S '$TMUX_SOCK' kill-server")
E2E_TAIL_FILES+=(tui.err tui.pane tui.history ws.out)
tui_start() {  # tui_start N
  # shellcheck disable=SC2046 # cli_env prints words
  netns_exec $(cli_env "$TMP/bob" "$BOB_TOKEN") tmux -S "$TMUX_SOCK" -f /dev/null \
    new-session -d -s "tui$1" -x 160 -y 45 \
    "timeout --foreground 240 '$OPENCLAW' tui --token placeholder-not-a-gateway-secret 2>>'$TMP/tui.err'; echo exit=\$? >>'$TMP/tui.exit'; sleep 240"
}
pane() { tmux -S "$TMUX_SOCK" capture-pane -p -S -300 -t "$1" 2>/dev/null | tee "$TMP/tui.pane"; }

# 1. first start: the gateway asks for pairing ---------------------------------
T0=$(date +%s)
tui_start 1 || fatal "tmux could not start the TUI"
pairing_req() {
  REQ="$(grep -o 'requestId: [0-9a-f-]*' "$TMP/tui.err" 2>/dev/null | tail -1 | cut -d' ' -f2)"
  [[ -n "$REQ" ]] || REQ="$(grep "cause=pairing-required" "$TMP/gateway.out" | grep "fwd=$CLIENT_IP" | grep -o 'requestId=[0-9a-f-]*' | tail -1 | cut -d= -f2)"
  [[ -n "$REQ" ]]
}
check "bob's first 'openclaw tui' gets 'device pairing required' from the gateway" wait_for 60 "pairing request" pairing_req
log "pairing request $REQ after $(( $(date +%s) - T0 ))s"
tmux -S "$TMUX_SOCK" kill-session -t tui1 2>/dev/null

# 2. ops approves it through clawgate -------------------------------------------
# shellcheck disable=SC2046
netns_exec $(cli_env "$TMP/ops" "$OPS_TOKEN") timeout 60 "$OPENCLAW" devices approve "$REQ" \
  </dev/null >"$TMP/approve.out" 2>&1
approve_rc=$?
check "ops: 'openclaw devices approve $REQ' through clawgate prints Approved (rc=$approve_rc)" \
  grep -q "^Approved .*($REQ)" "$TMP/approve.out"
check "gateway log: device pairing approved" grep -q "device pairing approved device=" "$TMP/gateway.out"

# 3. second start: connected ---------------------------------------------------
before=$(gw_user_lines bob)
tui_start 2 || fatal "tmux could not start the TUI again"
tui_connected() { pane tui2 | grep -q "gateway connected"; }
gw_bob_connected() { [[ $(gw_user_lines bob) -gt $before ]]; }
check "bob's 'openclaw tui' shows 'gateway connected'" wait_for 60 "TUI connected" tui_connected
check "gateway log: '[ws] authenticated user connected ... user=bob'" wait_for 10 "user=bob" gw_bob_connected
log "gateway: $(grep "authenticated user connected conn=.* user=bob$" "$TMP/gateway.out" | tail -1)"
log "TUI connected $(( $(date +%s) - T0 ))s after the first start"
check "clawgate: clawgate_websockets_open{member=\"bob\"} = 1" \
  metric_is 'clawgate_websockets_open{member="bob"}' 1

# carol's plain WebSocket -------------------------------------------------------
setsid ip netns exec "$CG_NS" env -i PATH="/usr/bin:/bin" BROWSER_MODULES="$BROWSER_MODULES" \
  WS_URL="wss://$LISTEN_IP:$LISTEN_PORT/" CLAWGATE_TOKEN="$CAROL_TOKEN" WS_CA="$CG/tls/server.crt" \
  WS_MAX_MS=60000 timeout 70 "$NODE" "$HERE/ws_client.cjs" >"$TMP/ws.out" 2>&1 </dev/null &
WS_PID=$!
E2E_EXTRA_PIDS+=("$WS_PID")
record_pgid "$WS_PID"
ws_open() { grep -q '"event":"message"' "$TMP/ws.out"; }
check "carol's ws client is open through clawgate (101, first gateway frame received)" wait_for 10 "ws open" ws_open
CAROL_RID="$(jq -r 'select(.event == "upgrade") | .request_id' "$TMP/ws.out" 2>/dev/null | head -1)"
check "carol's upgrade answer carries a request ID ($CAROL_RID)" is_request_id "$CAROL_RID"

# 4. revoke: remove bob's file, and carol's token from hers ----------------------
member_env "cg_$(rand)" "operator.read" >"$TMP/carol.env.new"
chmod 600 "$TMP/carol.env.new"
# Sample the TUI's screen every 0.2 s (8 s at most): its status line moves
# on to the reconnect attempt within seconds.
T1=$(date +%s%N)
( for _ in $(seq 1 40); do
    echo "@@ $(( ($(date +%s%N) - T1) / 1000000 ))" >>"$TMP/tui.history"
    tmux -S "$TMUX_SOCK" capture-pane -p -t tui2 >>"$TMP/tui.history" 2>/dev/null; sleep 0.2
  done ) &
E2E_EXTRA_PIDS+=("$!")
rm -f "$CG/members/bob.env"
mv "$TMP/carol.env.new" "$CG/members/carol.env"
revoked() {  # revoked MEMBER REASON
  jq_any "$TMP/access.log" --arg m "$1" --arg r "$2" '.kind == "websocket" and .member == $m and .decision == "revoked" and .reason == $r'
}
check "access log: bob's TUI WebSocket, kind websocket, decision revoked, reason member_removed (within 5 s)" \
  wait_for 5 "bob revoked" revoked bob member_removed
log "revocation logged $(( ($(date +%s%N) - T1) / 1000000 )) ms after the files changed"
log "access log: $(grep '"decision":"revoked"' "$TMP/access.log" | grep '"member":"bob"' | head -1)"
check "access log: carol's WebSocket revoked, reason bad_token" wait_for 5 "carol revoked" revoked carol bad_token
check "metric clawgate_revoked_connections_total{member=\"bob\",reason=\"member_removed\"} = 1" \
  metric_is 'clawgate_revoked_connections_total{member="bob",reason="member_removed"}' 1
check "metric clawgate_websockets_open{member=\"bob\"} back to 0" \
  metric_is 'clawgate_websockets_open{member="bob"}' 0
check "clawgate log: 'closed open WebSocket ... member=bob reason=\"member_removed\"'" \
  grep -q 'closed open WebSocket .*member=bob reason="member_removed"' "$TMP/clawgate.out"
gw_bob_gone() { grep -q "authenticated user disconnected .* user=bob$" "$TMP/gateway.out"; }
check "gateway log: bob's connection ended" wait_for 5 "bob disconnected" gw_bob_gone
log "gateway: $(grep "authenticated user disconnected .* user=bob$" "$TMP/gateway.out" | tail -1)"
tui_dropped() { grep -q "gateway disconnected" "$TMP/tui.history"; }
check "bob's TUI shows 'gateway disconnected'" wait_for 5 "TUI disconnected" tui_dropped
log "TUI, $(awk '/^@@ /{t=$2} /gateway disconnected/{print t; exit}' "$TMP/tui.history") ms after the files changed: $(grep -m1 'gateway disconnected' "$TMP/tui.history" | sed 's/^ *//' | cut -c1-200)"
BOB_RID="$(jq -r 'select(.kind == "websocket" and .member == "bob" and .decision == "revoked") | .request_id' "$TMP/access.log" 2>/dev/null | head -1)"
check "bob's revoked line in the access log has a request ID ($BOB_RID)" is_request_id "$BOB_RID"
tui_reason() { is_request_id "$BOB_RID" && grep -qF "clawgate: member_removed; request_id=$BOB_RID" "$TMP/tui.history"; }
check "bob's TUI shows clawgate's close reason with the request ID: 'clawgate: member_removed; request_id=$BOB_RID'" tui_reason
tui_refused() { pane tui2 | tr -d '\n' | grep -q "rejected websocket upgrade (HTTP 401)"; }
check "bob's TUI reconnect is refused by clawgate (HTTP 401)" wait_for 20 "TUI 401" tui_refused
ws_closed() { grep -q '"event":"close"' "$TMP/ws.out"; }
wait_for 5 "ws close" ws_closed
log "ws client: $(grep '"event":"close"' "$TMP/ws.out")"
check "carol's ws client got close code 1008" jq_any "$TMP/ws.out" '.event == "close" and .code == 1008'
ws_reason() {
  is_request_id "$CAROL_RID" &&
    jq_any "$TMP/ws.out" --arg rid "$CAROL_RID" '.event == "close" and (.reason | endswith("request_id=" + $rid))'
}
check "its close reason carries request_id=$CAROL_RID" ws_reason

alive "$GW_PID"; check "gateway still running at the end" test $? -eq 0
alive "$CG_PID"; check "clawgate still running at the end" test $? -eq 0
exit 0   # the EXIT trap stops everything, removes the namespace, prints the tally
