#!/usr/bin/env bash
# Makes tests/fixtures/tls: a private certificate authority (ca.pem) and a server certificate it
# signed for 127.0.0.1 / localhost (server.pem, server.key), valid for 100 years. Test-only
# material: the key is public by being committed. Used by kiln-cli's eval tests, where
# tls_proxy.py serves HTTPS with it and `kiln eval --ca-cert ca.pem` must trust it (and must
# refuse it without --ca-cert). Needs the openssl CLI.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/tls"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days 36500 -subj "/CN=kiln test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
  -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' > ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 36500 -extfile ext 2>/dev/null
cp ca.pem server.pem server.key "$out/"
echo "wrote $out/{ca.pem,server.pem,server.key}"
