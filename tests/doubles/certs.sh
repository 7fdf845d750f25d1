#!/usr/bin/env bash
# certs.sh OUTDIR: generate the TLS material Ferry's tests use, with the openssl CLI.
#
#   ca.pem, ca.key            test CA ("Ferry Test CA")
#   server.pem, server.key    server certificate for localhost, SAN DNS:localhost,
#                             IP:127.0.0.1, IP:::1, signed by the test CA
#   client.pem, client.key    client certificate CN=ferry-test, signed by the test CA
#   other-ca.pem              an unrelated CA, for "wrong CA must fail" tests
#
# All keys are EC P-256 (fast to generate). Idempotent: if OUTDIR/ca.pem exists,
# nothing is done. Everything is generated in a scratch directory and moved into
# OUTDIR with ca.pem last, so an interrupted run never leaves a half-filled OUTDIR
# that looks complete. Quiet unless openssl fails.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
[ -e "$out/ca.pem" ] && exit 0

mkdir -p "$out"
umask 077 # private keys are readable by their owner only
tmp=$(mktemp -d "$out/.certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# One config for every certificate: the extension sections below are picked by
# name, so the system openssl.cnf (and its defaults) never matter.
cat >"$tmp/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt             = no
[dn]
[ca]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectAltName         = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
EOF

# ossl ARGS...: run openssl with its chatter in a log, shown only on failure.
ossl() {
    if ! openssl "$@" >>"$tmp/openssl.log" 2>&1; then
        echo "certs.sh: openssl $1 failed:" >&2
        cat "$tmp/openssl.log" >&2
        exit 1
    fi
}

# new_ca NAME CN: self-signed CA certificate NAME.pem with key NAME.key.
new_ca() {
    ossl req -x509 -config "$tmp/openssl.cnf" -extensions ca \
        -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tmp/$1.key" -out "$tmp/$1.pem" -days 3650 -subj "/CN=$2"
}

# new_leaf NAME CN EXTENSIONS: key NAME.key and certificate NAME.pem signed by ca.
new_leaf() {
    ossl req -new -config "$tmp/openssl.cnf" \
        -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tmp/$1.key" -out "$tmp/$1.csr" -subj "/CN=$2"
    ossl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 3650 \
        -extfile "$tmp/openssl.cnf" -extensions "$3" -out "$tmp/$1.pem"
}

new_ca ca "Ferry Test CA"
new_leaf server localhost server
new_leaf client ferry-test client
new_ca other-ca "Ferry Other CA"

chmod 644 "$tmp"/*.pem
mv "$tmp/server.pem" "$tmp/server.key" "$tmp/client.pem" "$tmp/client.key" \
    "$tmp/other-ca.pem" "$tmp/ca.key" "$out/"
mv "$tmp/ca.pem" "$out/" # last: its presence means the set is complete
