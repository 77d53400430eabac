#!/usr/bin/env bash
# `npm run bench`: Parley (and Kamailio 5.6 when installed) under sipp load; see bench/run.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sipp >/dev/null || { echo "bench: sipp is missing (Debian package sip-tester)" >&2; exit 1; }
exec node --import tsx bench/run.ts "$@"
