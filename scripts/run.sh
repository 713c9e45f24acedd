#!/usr/bin/env bash
# make run: one Atoll node on the default data dir with the demo site
# published. Ctrl-C stops it; the data dir stays, so the next run resumes.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/atoll}
export ATOLL_DATA=${ATOLL_DATA:-./atoll-data}
export ATOLL_API=${ATOLL_API:-http://127.0.0.1:9090}
HTTP_ADDR=${ATOLL_HTTP_ADDR:-127.0.0.1:8080}
PORT=${HTTP_ADDR##*:}

"$BIN" server --bootstrap --data "$ATOLL_DATA" --http-addr "$HTTP_ADDR" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' INT TERM EXIT

"$BIN" status --wait 30s >/dev/null
if ! "$BIN" site list | awk 'NR > 1 { print $1 }' | grep -qx demo; then
	"$BIN" site create demo
fi
"$BIN" deploy demo --site demo

token="(set with --admin-token)"
[ -f "$ATOLL_DATA/token" ] && token=$(cat "$ATOLL_DATA/token")
cat <<MSG

Atoll is running (one node, data in $ATOLL_DATA). Ctrl-C stops it.

  Demo site:  http://demo.localhost:$PORT/
  API:        $ATOLL_API
  Token:      $token

  curl -H 'Host: demo.localhost' http://$HTTP_ADDR/
  ATOLL_TOKEN=$token bin/atoll status

MSG
wait "$pid"
