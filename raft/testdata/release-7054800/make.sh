#!/bin/sh
# Makes the fixtures of this directory with the release built from commit
# 7054800 (the last one before feature levels):
#
#   git archive 7054800 | tar -x -C /tmp/old-src
#   (cd /tmp/old-src && go build -o /tmp/atoll-old ./cmd/atoll)
#   sh make.sh /tmp/atoll-old
#
# It runs one bootstrapped node on loopback, creates the sites under sites/
# (blog: two deploys, the second published; docs: a custom domain with a
# certificate; shop: one published deploy and one abandoned upload of
# three files, never uploaded), a deploy token, saves the metadata with
# `atoll snapshot save` (atoll.snap; its body is that release's fsm.db,
# zstd-compressed) and stops the node. The cluster key is in cluster-key (certificate keys are
# sealed with it); the admin token is "fixture-admin-token".
set -eu
ATOLL=${1:?usage: make.sh ATOLL-BINARY}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
export ATOLL_API=http://127.0.0.1:19090 ATOLL_TOKEN=fixture-admin-token
"$ATOLL" server --bootstrap --data "$work/data" --id fixture-1 \
	--api-addr 127.0.0.1:19090 --http-addr 127.0.0.1:18080 --raft-addr 127.0.0.1:17000 \
	--cluster-key-file "$here/cluster-key" --admin-token fixture-admin-token \
	>"$work/log" 2>&1 &
pid=$!
until curl -fs http://127.0.0.1:19090/readyz >/dev/null; do sleep 0.2; done

"$ATOLL" site create blog
"$ATOLL" site create docs --domain docs.example.com
"$ATOLL" site create shop
cp -r "$here/sites/blog" "$work/blog1" && echo '<h1>blog, first deploy</h1>' >"$work/blog1/index.html"
"$ATOLL" deploy "$work/blog1" --site blog
"$ATOLL" deploy "$here/sites/blog" --site blog
"$ATOLL" deploy "$here/sites/docs" --site docs
"$ATOLL" deploy "$here/sites/shop" --site shop
curl -fs -X POST -H "Authorization: Bearer $ATOLL_TOKEN" -H 'Content-Type: application/json' \
	-d '{"files": {"/a.html": "'"$(printf a | sha256sum | cut -c1-64)"'", "/b.html": "'"$(printf bb | sha256sum | cut -c1-64)"'", "/c.html": "'"$(printf ccc | sha256sum | cut -c1-64)"'"}}' \
	http://127.0.0.1:19090/v1/sites/shop/deploys >/dev/null
"$ATOLL" token create --site blog --name ci >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
	-subj /CN=docs.example.com -addext subjectAltName=DNS:docs.example.com \
	-keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
"$ATOLL" cert put --site docs --domain docs.example.com --cert "$work/cert.pem" --key "$work/key.pem"

"$ATOLL" snapshot save "$here/atoll.snap"
kill -TERM $pid
wait $pid || true
