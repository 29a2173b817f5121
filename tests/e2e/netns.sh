#!/usr/bin/env bash
# Network namespace for the OpenClaw end-to-end tests.
#
# The gateway refuses a forwarded client address that is loopback
# (proxy_attribution_required), so the member CLI runs in its own network
# namespace, joined to the host by a veth pair on a private /30:
#   host side  $CG_NS_HOST_IF  $CG_NS_HOST_IP/30  (clawgate listens here)
#   ns side    $CG_NS_PEER_IF  $CG_NS_NS_IP/30    (the member's CLI runs here)
# No default route is added in the namespace: from inside it only the host
# side of the veth (and the namespace's own loopback) can be reached.
#
# Use as a command:   tests/e2e/netns.sh up|down|status|exec CMD...
# or source it:       . tests/e2e/netns.sh; netns_up; netns_exec CMD; netns_down
# Both up and down are idempotent. Needs root (CAP_NET_ADMIN) and iproute2.

CG_NS="${CG_NS:-clawgate-e2e}"
CG_NS_HOST_IF="${CG_NS_HOST_IF:-cg-e2e-h}"
CG_NS_PEER_IF="${CG_NS_PEER_IF:-cg-e2e-n}"
CG_NS_HOST_IP="${CG_NS_HOST_IP:-10.203.0.1}"
CG_NS_NS_IP="${CG_NS_NS_IP:-10.203.0.2}"
CG_NS_PREFIX="${CG_NS_PREFIX:-30}"

netns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$CG_NS"; }

netns_down() {
  # Deleting the namespace destroys the peer end, which destroys the pair.
  if netns_exists; then ip netns del "$CG_NS" 2>/dev/null || true; fi
  if ip link show "$CG_NS_HOST_IF" >/dev/null 2>&1; then ip link del "$CG_NS_HOST_IF" 2>/dev/null || true; fi
  ! netns_exists && ! ip link show "$CG_NS_HOST_IF" >/dev/null 2>&1
}

netns_up() {
  # Rebuild from scratch unless everything is already exactly in place.
  if netns_exists && ip -o addr show dev "$CG_NS_HOST_IF" 2>/dev/null | grep -q " $CG_NS_HOST_IP/$CG_NS_PREFIX " \
     && ip netns exec "$CG_NS" ip -o addr show dev "$CG_NS_PEER_IF" 2>/dev/null | grep -q " $CG_NS_NS_IP/$CG_NS_PREFIX "; then
    return 0
  fi
  netns_down || return 1
  ip netns add "$CG_NS" || return 1
  { ip link add "$CG_NS_HOST_IF" type veth peer name "$CG_NS_PEER_IF" \
    && ip link set "$CG_NS_PEER_IF" netns "$CG_NS" \
    && ip addr add "$CG_NS_HOST_IP/$CG_NS_PREFIX" dev "$CG_NS_HOST_IF" \
    && ip link set "$CG_NS_HOST_IF" up \
    && ip netns exec "$CG_NS" ip addr add "$CG_NS_NS_IP/$CG_NS_PREFIX" dev "$CG_NS_PEER_IF" \
    && ip netns exec "$CG_NS" ip link set "$CG_NS_PEER_IF" up \
    && ip netns exec "$CG_NS" ip link set lo up; } || { netns_down; return 1; }
  # Wait (bounded) until the link passes traffic: veth needs a moment after up.
  local i
  for i in $(seq 1 50); do
    if ip netns exec "$CG_NS" ping -c1 -W1 "$CG_NS_HOST_IP" >/dev/null 2>&1; then return 0; fi
    # No ping installed: fall back to checking both ends report LOWER_UP.
    if ! command -v ping >/dev/null && ip link show "$CG_NS_HOST_IF" | grep -q LOWER_UP; then return 0; fi
    sleep 0.1
  done
  echo "netns.sh: veth $CG_NS_HOST_IF <-> $CG_NS/$CG_NS_PEER_IF did not come up" >&2
  return 1
}

netns_exec() { ip netns exec "$CG_NS" "$@"; }

netns_status() {
  echo "namespace: $CG_NS $(netns_exists && echo present || echo absent)"
  ip -br addr show dev "$CG_NS_HOST_IF" 2>/dev/null || echo "host if $CG_NS_HOST_IF absent"
  netns_exists && ip netns exec "$CG_NS" ip -br addr
  return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    up) netns_up ;;
    down) netns_down ;;
    status) netns_status ;;
    exec) shift; netns_exec "$@" ;;
    *) echo "usage: $0 up|down|status|exec CMD..." >&2; exit 2 ;;
  esac
fi
