#!/usr/bin/env bash
# Runs a command with the project's moto server on 127.0.0.1, then stops the server.
# Usage: scripts/with-moto.sh VENV STATE_FILE COMMAND...
# The command sees WARMPOOL_MOTO_STATE=STATE_FILE (endpoint, launch template, subnets).
set -euo pipefail
venv=$1 state=$(realpath -m "$2")
shift 2
rm -f "$state"
"$venv/bin/python" scripts/moto_server.py --state "$state" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    [ -s "$state" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "moto server exited before it was ready" >&2; exit 1; }
    sleep 0.1
done
[ -s "$state" ] || { echo "moto server not ready after 60 s" >&2; exit 1; }
WARMPOOL_MOTO_STATE=$state "$@"
