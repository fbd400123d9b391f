#!/usr/bin/env bash
# Install everything netlens and its tests need on a fresh Debian machine, as root.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc + libc6-dev build the runtime's small C spawner (runtime/netlens_runtime/spawn_helper.c) and
# discovery's namespace walker (netlens/discovery/walk.c). libseccomp2 compiles every
# container's seccomp filter (without it confined containers are refused).
DEBS=(iproute2 iperf3 nftables iptables procps util-linux tini busybox-static tmux kmod iputils-ping graphviz gcc libc6-dev libseccomp2)
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

# The runtime's batch spawner (runtime/netlens_runtime/spawn_helper.c; optional: without a C
# compiler batches use the slower Python spawner).
"$PY" -m netlens_runtime.helper >/dev/null || echo "setup: netlens-spawn not built; Python spawner used"
# Discovery's namespace walker (netlens/discovery/walk.c; optional: without it
# the discovery helper is a Python process).
"$PY" -m netlens.discovery.walker >/dev/null || echo "setup: netlens-walk not built; Python discovery helper used"

# Third-party engines for tests/integration/test_engine_*.py (marker `engine`):
# Debian's docker.io, podman with netavark (without it podman falls back to CNI
# plugins that are not installed) and lxc (its busybox template builds a rootfs offline).
# The docker test starts dockerd itself (no systemd here) and stops it;
# a temporary policy-rc.d keeps the packages from starting daemons at install time.
ENGINE_DEBS=(docker.io podman netavark lxc)
engine_missing=()
for p in "${ENGINE_DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || engine_missing+=("$p")
done
if [ "${#engine_missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages ${engine_missing[*]} (engine tests)"
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${engine_missing[@]}" >/dev/null 2>&1 \
    || echo "setup: ${engine_missing[*]} could not be installed; their engine tests will skip"
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
