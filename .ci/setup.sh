#!/usr/bin/env bash
# Install everything netlens and its tests need on a fresh Debian machine, as root.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Files installed here are read by tests that run netlens as nobody (the not-root
# paths): a restrictive inherited umask (077) would make fresh packages unreadable.
umask 022

# gcc + libc6-dev build the runtime's small C spawner (runtime/netlens_runtime/spawn_helper.c) and
# discovery's namespace walker (netlens/kernel/walk.c) when the package is built (setup.py).
# zsh runs the completion tests; tcpdump, iperf3 and ping are the host's tools a container
# must still run (tests/integration/test_confine_fs.py); libseccomp2 compiles every
# container's seccomp filter (without it confined containers are refused).
# prometheus: the real server tests/integration/test_exporter_live.py scrapes the
# exporter with (run on 127.0.0.1 with a temp config and storage; never as a service).
# openssh-server: the sshd tests/integration/test_fleet_ssh.py starts on 127.0.0.1 with its
# own host key, config and authorized_keys for 'netlens fleet' (never as a service).
# tshark reads back what tests/integration/test_capture_live.py's 'netlens capture' wrote.
DEBS=(iproute2 iperf3 nftables iptables procps util-linux tini busybox-static tmux kmod iputils-ping tcpdump tshark graphviz gcc libc6-dev zsh libseccomp2 prometheus openssh-server)
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  # tshark asks whether non-root users may capture: no (netlens capture runs as root)
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# The editable install must point at THIS checkout (a copy elsewhere, or an older clone
# that is gone, leaves a stale one): import both packages from outside the checkout.
here=$(pwd -P)
if ! (cd / && "$PY" -c 'import sys, netlens, netlens_runtime, textual, pyroute2, networkx, psutil, msgspec, asyncssh, pytest, jsonschema, build
for m in (netlens, netlens_runtime):
    assert m.__file__.startswith(sys.argv[1] + "/"), m.__file__' "$here") 2>/dev/null \
   || [ pyproject.toml -nt .ci/.installed ] || [ setup.py -nt .ci/.installed ]; then
  echo "setup: installing Python packages"
  "$PY" -m pip install -q --disable-pip-version-check -e ".[dev]"
  touch .ci/.installed
fi

# The C helpers, netlens-walk (discovery's namespace walker) and netlens-spawn (the
# runtime's batch spawner): setup.py's build step compiles them into the checkout's
# _bin/ folders when one is missing or older than its sources (the editable install
# above does the same). Optional: without a C compiler it says so and the Python
# fallbacks run; `python3 -m netlens --version` tells which.
"$PY" -W ignore setup.py -q build_helpers --inplace

# Third-party engines for tests/integration/test_engine_*.py (marker `engine`):
# Debian's docker.io, podman with netavark (without it podman falls back to CNI
# plugins that are not installed), runc (podman is run with --runtime runc: crun refuses a
# hybrid cgroup layout) and lxc (its busybox template builds a rootfs offline).
# The docker test starts dockerd itself (no systemd here) and stops it;
# a temporary policy-rc.d keeps the packages from starting daemons at install time.
ENGINE_DEBS=(docker.io podman netavark runc lxc)
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
  engines_ok=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${engine_missing[@]}" >/dev/null 2>&1 \
    || engines_ok=0
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ "$engines_ok" = 0 ]; then
    if [ "${CI:-}" = true ]; then  # under CI an engine test that cannot run fails: say why here
      echo "setup: ${engine_missing[*]} could not be installed: the engine tests cannot run" >&2
      exit 1
    fi
    echo "setup: ${engine_missing[*]} could not be installed; their engine tests will skip"
  fi
fi

# br_netfilter makes bridged frames traverse iptables (the NAT and forward tests need
# it); built in on some kernels, a module on others.
modprobe br_netfilter 2>/dev/null || true
