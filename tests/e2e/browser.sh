#!/usr/bin/env bash
# End-to-end: real headless Chromium -> clawgate (TLS, browser sessions) ->
# the real OpenClaw gateway's Control UI.
#
#   tests/e2e/browser.sh path/to/clawgate
#
# Starts, all in a temp dir removed on exit: the real gateway (trusted-proxy
# mode, deviceAutoApprove, controlUi.allowedOrigins = the origin the browser
# uses), clawgate on the host side of the veth (10.203.0.1:8443) with
# [session] and a file access log, and Debian's Chromium (driven by
# playwright-core, browser.cjs) inside the network namespace (10.203.0.2),
# because the gateway refuses loopback client addresses.
# Asserts: (1) https://10.203.0.1:8443/ redirects to the login form, alice's
# token logs in (303 + Secure/HttpOnly/SameSite=Strict cookie), the Control
# UI loads, its WebSocket connects with the cookie, the gateway logs
# `[ws] authenticated user connected ... user=alice` and the UI shows alice
# connected; (2) the same page under https://gw.other.test:8443 (not in
# alice's ORIGINS) gets 403 on the login POST and the access log has the
# 403 line with origin.presented = that origin; (3) removing alice's token
# from her member file closes the open UI WebSocket (access log "revoked")
# and the cookie stops working.
# Screenshots: $CLAWGATE_E2E_SHOTS (default: the temp dir; kept with
# CLAWGATE_E2E_KEEP=1). Ends with "N passed, N failed"; exit 0 only if 0 failed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
e2e_init "${1:-}"
[[ -n "$BROWSER_MODULES" && -d "$BROWSER_MODULES/playwright-core" ]] || fatal "install.sh printed no BROWSER_MODULES (playwright-core)"
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || fatal "no /usr/bin/chromium (install.sh installs Debian's chromium)"

OTHER_HOST="gw.other.test"
URL_OK="https://$LISTEN_IP:$LISTEN_PORT"       # in alice's ORIGINS and allowedOrigins
URL_OTHER="https://$OTHER_HOST:$LISTEN_PORT"   # the same clawgate, an origin nobody allows
SHOTS="${CLAWGATE_E2E_SHOTS:-$TMP/shots}"
mkdir -p "$SHOTS" "$TMP/sync" "$TMP/profile" "$TMP/bhome"
ALICE_TOKEN="cg_$(rand)"

# ------------------------------------------------------------- clawgate -----
e2e_tls_cert "DNS:$OTHER_HOST"
head -c 32 /dev/urandom >"$CG/session.key"
chmod 600 "$CG/session.key"
cat >"$CG/clawgate.toml" <<EOF
[listen]
addr = "$LISTEN_IP:$LISTEN_PORT"
tls_cert = "tls/server.crt"
tls_key = "tls/server.key"
[admin]
addr = "127.0.0.1:$ADMIN_PORT"
[upstreams.prod]
url = "http://127.0.0.1:$GW_PORT"
[session]
key_file = "session.key"
ttl = "12h"
[log]
access = "$TMP/access.log"
EOF
# "none": the browser's own navigations and same-origin GETs send no Origin.
alice_env() {  # alice_env TOKEN
  cat <<EOF
TOKEN_SHA256=$(sha "$1")
ORIGINS="none $URL_OK"
EGRESS_CIDRS="$CG_NS_NS_IP/32"
SCOPES="operator.read,operator.write"
EOF
}
alice_env "$ALICE_TOKEN" >"$CG/members/alice.env"
chmod 600 "$CG/members/alice.env"

e2e_gateway "[\"$URL_OK\"]" '{"alice":["operator.read","operator.write"]}'
e2e_clawgate

# --------------------------------------------------------------- browser ----
log "Chromium in $CG_NS: $URL_OK and $URL_OTHER"
T0=$(date +%s)
setsid ip netns exec "$CG_NS" env -i PATH="/usr/bin:/bin" HOME="$TMP/bhome" \
  BROWSER_MODULES="$BROWSER_MODULES" CG_URL="$URL_OK" CG_OTHER_URL="$URL_OTHER" \
  CG_OTHER_MAP="$OTHER_HOST $LISTEN_IP" ALICE_TOKEN="$ALICE_TOKEN" SHOT_DIR="$SHOTS" \
  PROFILE_DIR="$TMP/profile" SYNC_DIR="$TMP/sync" STEP_TIMEOUT_MS=30000 \
  timeout 150 "$NODE" "$HERE/browser.cjs" >"$TMP/browser.json" 2>"$TMP/browser.err" </dev/null &
BROWSER_PID=$!
E2E_EXTRA_PIDS+=("$BROWSER_PID")
record_pgid "$BROWSER_PID"
E2E_TAIL_FILES+=(browser.err)
phase1() { [[ -s "$TMP/sync/phase1.json" ]] || ! alive "$BROWSER_PID"; }
wait_for 120 "the browser's first part" phase1
J="$TMP/sync/phase1.json"
[[ -s "$J" ]] || { cp "$TMP/browser.json" "$J" 2>/dev/null; }
jqj() { jq -e "$@" "$J" >/dev/null 2>&1; }
log "browser part 1 took $(( $(date +%s) - T0 ))s; errors: $(jq -c '.errors' "$J" 2>/dev/null | cut -c1-300)"

# (1) allowed origin --------------------------------------------------------
check "GET $URL_OK/ (Accept: text/html, no session) -> 303 to /_clawgate/login?next=%2F" \
  jqj '.allowed.redirects[0].status == 303 and .allowed.redirects[0].location == "/_clawgate/login?next=%2F"'
check "login form shown (200, one token field)" jqj '.allowed.login_status == 200 and .allowed.login_form == true'
check "login POST (Origin $URL_OK) -> 303" \
  jqj --arg o "$URL_OK" '.allowed.post_status == 303 and .allowed.post_origin == $o'
check "Set-Cookie: clawgate_session=...; Path=/; Secure; HttpOnly; SameSite=Strict" \
  jqj '.allowed.post_set_cookie | test("^clawgate_session=[^;]+;") and test("; Path=/") and test("; Secure") and test("; HttpOnly") and test("; SameSite=Strict")'
check "Chromium holds the cookie as HttpOnly, Secure, SameSite=Strict" \
  jqj '[.allowed.cookies[] | select(.name == "clawgate_session" and .httpOnly and .secure and .sameSite == "Strict")] | length == 1'
check "after login the browser is back on $URL_OK/" jqj --arg u "$URL_OK/" '.allowed.after_login_url == $u'
check "the Control UI opened its WebSocket on wss://$LISTEN_IP:$LISTEN_PORT/ and got frames" \
  jqj --arg u "wss://$LISTEN_IP:$LISTEN_PORT/" '[.allowed.ws[] | select(.url == $u and .frames_in > 0)] | length >= 1'
check "the Control UI shows alice connected (page title $(jq -r .allowed.title "$J" 2>/dev/null))" jqj '.allowed.ui_connected == true'
log "UI: $(jq -c '.allowed.connected_el' "$J" 2>/dev/null | cut -c1-400)"
gw_alice_connected() { [[ $(gw_user_lines alice) -ge 1 ]]; }
check "gateway log: '[ws] authenticated user connected ... user=alice'" wait_for 10 "user=alice" gw_alice_connected
log "gateway: $(grep -m1 "authenticated user connected conn=.* user=alice" "$TMP/gateway.out")"
# Chromium opens the UI's WebSocket as a stream of the page's h2 connection
# once clawgate offers it (RFC 8441: CONNECT, 200), else as an HTTP/1.1
# upgrade (GET, 101); either is alice's session.
check "access log: the upgrade was alice's session (CONNECT 200 over h2, or 101; member alice)" \
  jq_any "$TMP/access.log" '.member == "alice" and .path == "/" and .decision == "allow"
    and ((.method == "CONNECT" and .status == 200) or .status == 101)'
log "access log, the UI's WebSocket: $(jq -c 'select(.member == "alice" and .path == "/" and (.method == "CONNECT" or .status == 101)) | {method, status, decision}' "$TMP/access.log" 2>/dev/null | head -n1)"

check "screenshot of the connected UI: $SHOTS/allowed.png" test -s "$SHOTS/allowed.png"

# (2) disallowed origin -----------------------------------------------------
check "$URL_OTHER/ also redirects to the login form" \
  jqj '.other.redirects[0].status == 303 and .other.login_form == true'
check "login POST with Origin $URL_OTHER -> 403" \
  jqj --arg o "$URL_OTHER" '.other.post_status == 403 and .other.post_origin == $o'
check "403 body: origin_not_allowed, presented $URL_OTHER, allowed has $URL_OK" \
  jqj --arg o "$URL_OTHER" --arg a "$URL_OK" \
  '.other.post_body.reason == "origin_not_allowed" and .other.post_body.origin.presented == $o and (.other.post_body.origin.allowed | index($a)) != null'
# Only meaningful if that part ran to the end: an empty .other also has no cookies.
check "no session cookie for $OTHER_HOST (its part ran: 403 seen, cookies read)" \
  jqj '.other.done == true and .other.post_status == 403 and (.other.cookies | type) == "array"
    and (.other.cookies | length) == 0 and (.other | has("post_set_cookie")) and .other.post_set_cookie == null'
RID="$(jq -r '.other.post_request_id' "$J" 2>/dev/null)"
check "the 403 carries a request ID ($RID)" is_request_id "$RID"
deny_line() {
  jq_any "$TMP/access.log" --arg rid "$RID" --arg o "$URL_OTHER" '.request_id == $rid and .status == 403
    and .path == "/_clawgate/login" and .decision == "deny" and .reason == "origin_not_allowed"
    and .diff.origin.presented == $o'
}
check "access log: 403 line for request $RID with diff origin.presented=$URL_OTHER" wait_for 5 "403 line" deny_line
log "access log: $(grep -F "\"request_id\":\"$RID\"" "$TMP/access.log" | cut -c1-600)"

# (3) alice's token removed from her file while the UI is open ---------------
ws_before=$(cg_metric 'clawgate_websockets_open{member="alice"}') || ws_before="(no sample)"
alice_env "cg_$(rand)" >"$TMP/alice.env.new"
chmod 600 "$TMP/alice.env.new"
T1=$(date +%s%N)
mv "$TMP/alice.env.new" "$CG/members/alice.env"   # atomic; clawgate watches the dir
touch "$TMP/sync/go"
revoked_line() { jq_any "$TMP/access.log" '.kind == "websocket" and .member == "alice" and .decision == "revoked" and .reason == "bad_token"'; }
check "access log: alice's open UI WebSocket closed, kind websocket, decision revoked (reason bad_token)" \
  wait_for 5 "revoked line" revoked_line
log "revocation logged $(( ($(date +%s%N) - T1) / 1000000 )) ms after the file changed (websockets_open before: $ws_before)"
check "metric clawgate_revoked_connections_total{member=\"alice\",reason=\"bad_token\"} = 1" \
  metric_is 'clawgate_revoked_connections_total{member="alice",reason="bad_token"}' 1
gw_alice_gone() { grep -q "authenticated user disconnected .* user=alice$" "$TMP/gateway.out"; }
check "gateway log: alice disconnected" wait_for 5 "alice disconnected" gw_alice_gone
connected_before=$(gw_user_lines alice)

wait_for 60 "browser to finish" eval '! alive "$BROWSER_PID"'
wait "$BROWSER_PID" 2>/dev/null
B="$TMP/browser.json"
jqb() { jq -e "$@" "$B" >/dev/null 2>&1; }
check "browser: every Control UI WebSocket closed after the token was removed" jqb '.revoked.go == true and .revoked.ws_all_closed == true'
check "browser: reload with the stale cookie lands on the login form, not the UI ($(jq -r .revoked.reload_url "$B" 2>/dev/null))" \
  jqb '(.revoked.reload_url | test("/_clawgate/login")) and .revoked.ws_opened_after_reload == 0'
check "gateway: no new alice connection after the revocation" test "$(gw_user_lines alice)" -eq "$connected_before"
log "browser total $(( $(date +%s) - T0 ))s; screenshots in $SHOTS"

alive "$GW_PID"; check "gateway still running at the end" test $? -eq 0
alive "$CG_PID"; check "clawgate still running at the end" test $? -eq 0
exit 0   # the EXIT trap stops everything, removes the namespace, prints the tally
