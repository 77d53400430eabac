#!/usr/bin/env bash
# `npm start`: set-up (Node.js, Debian and npm packages), a build of the sources when they changed
# since the last one, then Parley from the compiled JavaScript with the sample parley.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/with-node.sh
bash scripts/setup.sh
if [ ! -f dist/cli/main.js ] || [ -n "$(find src tsconfig.json tsconfig.build.json package-lock.json -newer dist/cli/main.js -print -quit)" ]; then
  echo "start: building dist/"
  rm -rf dist
  npx tsc -p tsconfig.build.json
fi
exec node dist/cli/main.js start --config parley.yaml "$@"
