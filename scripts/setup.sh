#!/bin/sh
# Installs what the platform needs: Debian packages, then the Python package and its pinned
# dependencies into .venv. Idempotent and quick when everything is already there.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="runc nginx-light redis-server openssh-server openssh-client debootstrap tini \
iproute2 git make python3 python3-venv python3-pip ca-certificates wrk busybox-static skopeo umoci \
procps util-linux passwd chromium nftables systemd-container socat tinyproxy curl"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
if [ -n "$missing" ]; then
    echo "Installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
# The distribution's nginx would hold port 80, which the router takes; the installer tests
# start tinyproxy themselves.
for unit in nginx tinyproxy; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
done

stamp=.venv/.installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    /usr/bin/python3 -m venv .venv
    .venv/bin/pip install -q -e '.[test]'
    echo "$want" > "$stamp"
fi
if [ -d /usr/local/bin ] && [ -w /usr/local/bin ]; then
    ln -sf "$(pwd)/.venv/bin/paas" /usr/local/bin/paas
fi
echo "Setup done: CLI at $(pwd)/.venv/bin/paas"
