#!/usr/bin/env bash
# Install everything netlens and its tests need on a fresh Debian machine, as root.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(iproute2 iperf3 nftables iptables procps util-linux tini busybox-static tmux kmod iputils-ping graphviz)
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

# Third-party engine for tests/integration/test_engine_docker.py (marker `engine`):
# Debian's docker.io. The test starts dockerd itself (no systemd here) and stops it;
# a temporary policy-rc.d keeps the package from starting a daemon at install time.
if ! dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q "install ok installed"; then
  echo "setup: installing Debian package docker.io (engine tests)"
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null 2>&1 \
    || echo "setup: docker.io could not be installed; engine tests will skip"
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
