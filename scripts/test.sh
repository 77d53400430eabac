#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what is missing, type-checks, lints, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/with-node.sh
bash scripts/setup.sh --test
npx tsc -p tsconfig.json --noEmit
npx eslint .
mapfile -t files < <(find test -name '*.test.ts' | sort)
exec node --import tsx --test --test-concurrency=2 --test-reporter=spec "${files[@]}"
