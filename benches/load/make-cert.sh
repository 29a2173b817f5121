#!/usr/bin/env bash
# make-cert.sh DIR: a throwaway CA and an ECDSA P-256 server certificate for
# 127.0.0.1 signed by it, for the load scripts' TLS modes (ws_scale.sh
# --tls, syscalls.sh --tls). Writes into DIR:
#   ca.pem                  the CA certificate (clients trust it)
#   server.pem, server.key  the server's certificate and key (nginx, clawgate)
#   server-full.pem         both in one file (HAProxy's `crt`)
# The server certificate is a leaf (CA:FALSE, serverAuth): rustls refuses a
# CA certificate as a server's own. Valid for 2 days.
set -euo pipefail
dir=${1:?usage: make-cert.sh DIR}
command -v openssl >/dev/null || { echo "make-cert.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=clawgate-bench-ca -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=127.0.0.1 -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
  >"$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 2 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
cat "$dir/server.pem" "$dir/server.key" >"$dir/server-full.pem"
