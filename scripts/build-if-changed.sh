#!/usr/bin/env bash
# Builds dist/ (the compiled JavaScript that `npm start` and the benchmarks run) when the sources,
# the TypeScript settings or the locked dependencies changed since the last build; else does nothing.
# A rebuild starts from an empty dist/, so that no module of a deleted source outlives it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/with-node.sh
if [ ! -f dist/cli/main.js ] || [ -n "$(find src tsconfig.json tsconfig.build.json package-lock.json -newer dist/cli/main.js -print -quit)" ]; then
  echo "building dist/"
  rm -rf dist
  npx tsc -p tsconfig.build.json
fi
