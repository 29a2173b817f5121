# shellcheck shell=bash
# Sourced by run.sh: Debian's nghttp2 clients (nghttp, h2load) through
# clawgate, each compared with curl or h2load --h1 directly against the
# upstream. Uses run.sh's P_HTTP, P_CG, TOKEN_HTTP, WORK, ok, not_ok.

AUTH="authorization: Bearer $TOKEN_HTTP"
BIG=16777219

# The direct reference: what the upstream sends (curl over HTTP/1.1).
direct_sha() { timeout 60 curl -sS --fail "$@" | sha256sum | cut -c1-64; }

# nghttp, 16 MiB down with 16 KiB stream and 64 KiB connection windows
# (-w 14 -W 16): clawgate must pace its DATA to the client's WINDOW_UPDATEs.
want=$(direct_sha "http://127.0.0.1:$P_HTTP/bytes/$BIG")
got=$(timeout 120 nghttp -w 14 -W 16 -H "$AUTH" "http://127.0.0.1:$P_CG/bytes/$BIG" | sha256sum | cut -c1-64)
if [[ -n "$want" && "$got" = "$want" ]]; then
  ok "nghttp h2 16 MiB download, 16 KiB window: same SHA-256 as direct"
else
  not_ok "nghttp h2 16 MiB download, 16 KiB window: SHA-256 $got, direct $want"
fi

# nghttp, 16 MiB up (-d) to the echo: clawgate's own window paces nghttp;
# the upstream gets every byte (x-received-sha256) and echoes them back.
head -c "$BIG" /dev/urandom >"$WORK/up.bin"
up_sha=$(sha256sum "$WORK/up.bin" | cut -c1-64)
want=$(direct_sha --data-binary "@$WORK/up.bin" -H 'content-type: application/octet-stream' "http://127.0.0.1:$P_HTTP/echo")
got=$(timeout 120 nghttp -w 14 -W 16 -d "$WORK/up.bin" -H "$AUTH" "http://127.0.0.1:$P_CG/echo" | sha256sum | cut -c1-64)
if [[ "$want" = "$up_sha" && "$got" = "$up_sha" ]]; then
  ok "nghttp h2 16 MiB upload echoed: same SHA-256 as direct"
else
  not_ok "nghttp h2 16 MiB upload echoed: SHA-256 $got, direct $want, sent $up_sha"
fi
rm -f "$WORK/up.bin"

# h2load's tally: "requests: N total, N started, N done, N succeeded, N failed, ..."
# and "status codes: N 2xx, ...", reduced to "done succeeded failed 2xx".
h2load_tally() {
  local out
  out=$(timeout 120 h2load "$@" 2>&1)
  echo "$out" | awk '
    /^requests:/ { d=$6; s=$8; f=$10 }
    /^status codes:/ { x=$3 }
    END { print d+0, s+0, f+0, x+0 }'
}
n=2000
want=$(h2load_tally --h1 -n $n -c 4 -m 1 "http://127.0.0.1:$P_HTTP/bytes/10000")
for mode in "h2, 4 connections x 32 streams:-n $n -c 4 -m 32" \
            "HTTP/1.1, 4 connections x 8 pipelined:--h1 -n $n -c 4 -m 8"; do
  label=${mode%%:*}
  read -r -a args <<<"${mode#*:}"
  got=$(h2load_tally "${args[@]}" -H "$AUTH" "http://127.0.0.1:$P_CG/bytes/10000")
  if [[ "$want" = "$n $n 0 $n" && "$got" = "$want" ]]; then
    ok "h2load $label: $n of $n 2xx, as direct"
  else
    not_ok "h2load $label: done/succeeded/failed/2xx $got, direct $want"
  fi
done
