#!/usr/bin/env bash
# Checks of the deployment examples in config/examples/ with the real tools
# available here (no network namespace, no servers):
#   - every OpenClaw config (openclaw-gateway.json5, member-cli.json5, the two
#     gateway configs inline in compose.yaml, and what `clawgate
#     gateway-config` prints) passes `openclaw config validate`, the
#     gateway's own strict schema;
#   - compose.yaml parses; its gateways equal `clawgate gateway-config
#     --upstream prod|staging` for config/ (no drift), and its clawgate.toml
#     with config/members passes `clawgate check`;
#   - clawgate.service passes `systemd-analyze verify` without a warning and
#     reloads with SIGHUP, stops with SIGTERM, TimeoutStopSec > drain.
# docker does not run here, so compose.yaml itself is not started.
#
#   tests/e2e/examples.sh path/to/clawgate
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
EX="$ROOT/config/examples"
PASS=0 FAIL=0 TMP=""
ok()   { PASS=$((PASS + 1)); echo "ok - $*"; }
nok()  { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else nok "$name"; fi; }
log()  { echo "# $*"; }
fatal() { nok "$*"; exit 1; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n "$TMP" && -d "$TMP" ]] && rm -rf "$TMP"
  echo "$PASS passed, $FAIL failed"
  [[ $rc -ne 0 ]] && exit "$rc"
  [[ $FAIL -eq 0 ]] || exit 1
  exit 0
}
trap cleanup EXIT
trap 'nok interrupted; exit 130' INT TERM

ARG="${1:-}"
[[ -n "$ARG" && -x "$ARG" ]] || fatal "usage: $0 path/to/clawgate"
CLAWGATE="$(cd "$(dirname "$ARG")" && pwd)/$(basename "$ARG")"
OUT="$(timeout 1800 bash "$HERE/install.sh")" || fatal "install.sh failed"
NODE="$(sed -n 's/^NODE=//p' <<<"$OUT")"
OPENCLAW="$(sed -n 's/^OPENCLAW=//p' <<<"$OUT")"
OC_MODULES="$(dirname "$(dirname "$OPENCLAW")")/openclaw/node_modules"   # $CACHE/bin/openclaw -> $CACHE/openclaw
[[ -d "$OC_MODULES/yaml" && -d "$OC_MODULES/json5" ]] || fatal "yaml/json5 modules not found next to openclaw ($OC_MODULES)"
TMP="$(mktemp -d /tmp/clawgate-examples.XXXXXX)"

validate() {  # validate FILE: the gateway's own schema, offline
  env -i PATH="$(dirname "$OPENCLAW"):/usr/bin:/bin" HOME="$TMP/h" OPENCLAW_HOME="$TMP/h" \
    OPENCLAW_STATE_DIR="$TMP/h/state" OPENCLAW_CONFIG_PATH="$1" NO_COLOR=1 \
    timeout 60 "$OPENCLAW" config validate </dev/null >"$TMP/validate.out" 2>&1
  local rc=$?
  [[ $rc -eq 0 ]] || sed 's/^/#   /' "$TMP/validate.out" | head -8
  return $rc
}
mkdir -p "$TMP/h"
check "openclaw config validate: openclaw-gateway.json5" validate "$EX/openclaw-gateway.json5"
check "openclaw config validate: member-cli.json5" validate "$EX/member-cli.json5"

# compose.yaml: parse, pull out the inline configs.
node_eval() { NODE_PATH="$OC_MODULES" timeout 30 "$NODE" -e "$1" "${@:2}"; }
node_eval '
const fs = require("fs"), Y = require("yaml");
const [file, dir] = process.argv.slice(1);
const c = Y.parse(fs.readFileSync(file, "utf8"));
fs.writeFileSync(dir + "/compose.json", JSON.stringify(c));
for (const [k, v] of Object.entries(c.configs)) fs.writeFileSync(dir + "/" + k, v.content);
' "$EX/compose.yaml" "$TMP" 2>"$TMP/yaml.err"
check "compose.yaml parses (YAML)" test -s "$TMP/compose.json"
C="$TMP/compose.json"
check "compose.yaml: one clawgate, gateway-prod and gateway-staging in its network namespace" \
  jq -e '(.services | keys) == ["clawgate","gateway-prod","gateway-staging"]
    and .services["gateway-prod"].network_mode == "service:clawgate"
    and .services["gateway-staging"].network_mode == "service:clawgate"
    and (.services.clawgate.ports | length) == 1 and (.services["gateway-prod"].ports // [] | length) == 0' "$C" >/dev/null
check "compose.yaml: clawgate stops with SIGTERM and 45s grace (> drain 30s)" \
  jq -e '.services.clawgate.stop_signal == "SIGTERM" and .services.clawgate.stop_grace_period == "45s"' "$C" >/dev/null
check "openclaw config validate: compose gateway_prod" validate "$TMP/gateway_prod"
check "openclaw config validate: compose gateway_staging" validate "$TMP/gateway_staging"

# The gateways in compose.yaml = what clawgate derives from config/ members.
for up in prod staging; do
  if "$CLAWGATE" gateway-config --config "$ROOT/config" --upstream "$up" >"$TMP/gen-$up.json" 2>"$TMP/gen-$up.err"; then
    check "openclaw config validate: \`clawgate gateway-config --upstream $up\`" validate "$TMP/gen-$up.json"
    node_eval '
const fs = require("fs"), J5 = require("json5");
const [a, b] = process.argv.slice(1).map((f) => J5.parse(fs.readFileSync(f, "utf8")).gateway);
const pick = (g) => JSON.stringify({ auth: g.auth, controlUi: g.controlUi, trustedProxies: g.trustedProxies },
  (k, v) => (v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v));
if (pick(a) !== pick(b)) { console.error(pick(a) + "\n" + pick(b)); process.exit(1); }
' "$TMP/gateway_$up" "$TMP/gen-$up.json" 2>"$TMP/diff-$up.err"
    check "compose gateway_$up matches \`clawgate gateway-config --upstream $up\` (auth, controlUi, trustedProxies)" test $? -eq 0
    [[ -s "$TMP/diff-$up.err" ]] && sed 's/^/#   /' "$TMP/diff-$up.err"
  else
    nok "clawgate gateway-config --config config --upstream $up: $(head -c 300 "$TMP/gen-$up.err")"
  fi
done

# compose's clawgate.toml with config/members passes clawgate check.
D="$TMP/cg"
mkdir -p "$D/members" "$D/tls"
cp "$TMP/clawgate_toml" "$D/clawgate.toml"
cp "$ROOT/config/members/"*.env "$D/members/"
chmod 600 "$D/members/"*.env
head -c 32 /dev/urandom >"$D/session.key"
# The certificate names every host in the members' https ORIGINS, as
# `check` requires (browsers would refuse it otherwise).
sans=$(sed -n 's/^ORIGINS=//p' "$D/members/"*.env | tr -d '"' | tr ' ' '\n' \
  | sed -n 's#^https://\([^:/]*\).*#DNS:\1#p' | sort -u | paste -sd, -)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 40 -subj "/CN=clawgate" \
  -addext "subjectAltName=${sans:-DNS:localhost}" \
  -keyout "$D/tls/server.key" -out "$D/tls/server.crt" 2>/dev/null
chmod 600 "$D/tls/server.key" "$D/session.key"
timeout 30 "$CLAWGATE" check --config "$D" >"$TMP/check.out" 2>&1
rc=$?
check "clawgate check passes on compose's clawgate.toml + config/members (rc=$rc)" test $rc -eq 0
[[ $rc -eq 0 ]] || grep -E "FAIL|error" "$TMP/check.out" | sed 's/^/#   /' | head -5

# clawgate.service
U="$EX/clawgate.service"
if command -v systemd-analyze >/dev/null; then
  sed "s#/usr/local/bin/clawgate#$CLAWGATE#" "$U" >"$TMP/clawgate.service"
  timeout 60 systemd-analyze verify "$TMP/clawgate.service" >"$TMP/verify.out" 2>&1
  rc=$?
  check "systemd-analyze verify clawgate.service: exit 0, no warning" eval "[[ $rc -eq 0 && ! -s '$TMP/verify.out' ]]"
  [[ -s "$TMP/verify.out" ]] && sed 's/^/#   /' "$TMP/verify.out" | head -5
else
  nok "systemd-analyze not installed (Debian package systemd)"
fi
check "clawgate.service: ExecReload sends SIGHUP, KillSignal=SIGTERM, TimeoutStopSec=45s (> drain 30s)" \
  eval "grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' '$U' && grep -qx 'KillSignal=SIGTERM' '$U' && grep -qx 'TimeoutStopSec=45s' '$U'"
exit 0
