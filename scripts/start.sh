#!/usr/bin/env bash
# `npm start`: set-up (Node.js, Debian and npm packages), a build of the sources when they changed
# since the last one (scripts/build-if-changed.sh), then Parley from the compiled JavaScript with the
# sample parley.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/with-node.sh
bash scripts/setup.sh
bash scripts/build-if-changed.sh
exec node dist/cli/main.js start --config parley.yaml "$@"
