#!/usr/bin/env bash
# `npm run bench`: Parley (and Kamailio 5.6 and a bare Node.js responder) under sipp load, taking
# turns at each rate step, pinned apart from sipp with taskset; see bench/run.ts.
# `npm run bench -- --rooms` (or `npm run bench:rooms`): the chat-room benchmark, bench/rooms.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/with-node.sh
command -v sipp >/dev/null || { echo "bench: sipp is missing (Debian package sip-tester)" >&2; exit 1; }
for arg in "$@"; do
  [ "$arg" = "--rooms" ] && exec node --import tsx bench/rooms.ts "$@"
done
exec node --import tsx bench/run.ts "$@"
