#!/usr/bin/env bash
# Install everything netlens and its tests need on a fresh Debian machine, as root.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(iproute2 iperf3 nftables iptables procps util-linux tini busybox-static tmux kmod)
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import netlens, textual, pyroute2, networkx, psutil, pytest, jsonschema' 2>/dev/null \
   || [ pyproject.toml -nt .ci/.installed ]; then
  echo "setup: installing Python packages"
  "$PY" -m pip install -q --disable-pip-version-check -e ".[dev]"
  touch .ci/.installed
fi
