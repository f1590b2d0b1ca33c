#!/usr/bin/env bash
# One idempotent set-up step for a fresh Debian/Ubuntu machine (run as root or through sudo).
# System packages come from apt; the project and its Python deps go into ./.venv, so the
# result does not depend on which `python` sudo's PATH finds.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(mininet tcpdump iperf3 ethtool iproute2 iputils-ping spin gcc python3-venv)
PYTHON=${PYTHON:-python3}

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: apt installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    echo "install.sh: creating .venv with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
echo "install.sh: ready (.venv/bin/python)"
