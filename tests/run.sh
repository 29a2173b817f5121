#!/usr/bin/env bash
# The whole test suite: installs what it needs on a fresh Debian machine,
# then runs the unit and integration tests (cargo), the conformance suites
# compared through clawgate and directly (tests/conformance/run.sh: Autobahn
# for WebSockets on HTTP/1.1 and h2, HTTP/1.1 and h2 wire checks; ≈4 min)
# and the end-to-end suite against the real OpenClaw gateway, CLI and
# Chromium (tests/e2e/run.sh).
# This is the README's test command and what .ci/run calls.
#   CLAWGATE_SKIP_CONFORMANCE=1  skip the conformance suites
#   CLAWGATE_SKIP_E2E=1          skip the OpenClaw end-to-end suite
# (neither is ever skipped in CI: .ci/run sets neither)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v promtool >/dev/null || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  # Debian's prometheus package only provides promtool here; no server runs.
fi

# git does not keep file modes: the shipped member files must be 0600 or
# clawgate refuses them (as ssh refuses private keys).
chmod 600 config/members/*.env

cargo test --workspace --all-targets

if [ "${CLAWGATE_SKIP_CONFORMANCE:-0}" != 1 ]; then
  cargo build --bin clawgate
  tests/conformance/run.sh target/debug/clawgate
fi

if [ "${CLAWGATE_SKIP_E2E:-0}" != 1 ] && [ -x tests/e2e/run.sh ]; then
  cargo build
  tests/e2e/run.sh target/debug/clawgate
fi
