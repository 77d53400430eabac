#!/usr/bin/env bash
# Installs what Parley and its tests need on a fresh Debian machine, skipping what is already there.
# Usage: scripts/setup.sh [--test]   (--test adds the real peers the test suite drives)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/with-node.sh

need=()
command -v openssl >/dev/null || need+=(openssl)
if [ "${1:-}" = "--test" ]; then
  command -v sipp >/dev/null || need+=(sip-tester)
  command -v baresip >/dev/null || need+=(baresip-core)
  command -v linphonec >/dev/null || need+=(linphone-cli)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v prosody >/dev/null || need+=(prosody)
  # libunbound for Prosody, whose own resolver ignores /etc/hosts (the s2s test names live there).
  dpkg -s lua-unbound >/dev/null 2>&1 || need+=(lua-unbound)
  command -v ngircd >/dev/null || [ -x /usr/sbin/ngircd ] || need+=(ngircd)
  command -v tinyproxy >/dev/null || [ -x /usr/sbin/tinyproxy ] || need+=(tinyproxy)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Packaged servers start themselves on install; the tests start their own on loopback ports.
  for service in postgresql prosody ngircd tinyproxy; do $SUDO service "$service" stop >/dev/null 2>&1 || true; done
fi

# Native addons are built for one Node.js ABI: a node_modules built under another Node is built anew.
abi="$(node -p process.versions.modules)"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ "$(cat node_modules/.node-abi 2>/dev/null)" != "$abi" ]; then
  echo "setup: installing npm packages for Node.js $(node --version)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$abi" > node_modules/.node-abi
fi
