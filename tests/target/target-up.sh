#!/bin/sh
# Starts one target: a copy of the golden image (WORK/image) booted with systemd under
# systemd-nspawn in a network namespace NAME that holds only lo, with a relay from
# 127.0.0.1:3128 inside to the proxy of proxy-up.sh (a unix socket between two socats: no
# route, NAT or veth to the host). Waits until root can log in over SSH.
# Usage: target-up.sh WORK NAME   (target-down.sh WORK NAME removes everything, even after a
# failure here). NAME must be unique while the target runs: it names the netns, the cgroups
# and the ansible host.
set -eu
work=$1
name=$2
here=$(cd "$(dirname "$0")" && pwd)
t=$work/targets/$name
[ ! -e "$t" ] || { echo "target $name exists" >&2; exit 1; }
mkdir -p "$t"

ip netns add "$name"
ip -n "$name" link set lo up
mkdir "$t/root"
cp -a "$work/image/." "$t/root/"  # a plain copy: the platform's overlayfs does not nest on overlay
echo "$name" > "$t/root/etc/hostname"

setsid socat "UNIX-LISTEN:$t/proxy.sock,fork,mode=600" "TCP:127.0.0.1:$(cat "$work/proxy/port")" \
    < /dev/null > "$t/relay.log" 2>&1 &
echo $! > "$t/relay-host.pid"
setsid ip netns exec "$name" socat TCP-LISTEN:3128,bind=127.0.0.1,reuseaddr,fork \
    "UNIX-CONNECT:$t/proxy.sock" < /dev/null >> "$t/relay.log" 2>&1 &
echo $! > "$t/relay-netns.pid"

setsid "$here/launch.sh" "$work" "$name" < /dev/null > /dev/null 2>&1 &
echo $! > "$t/launcher.pid"

i=0
until ssh -q -i "$work/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 \
        -o "ProxyCommand=ip netns exec $name socat - TCP:127.0.0.1:22" "root@$name" true; do
    i=$((i + 1))
    if [ $i -ge 60 ]; then
        tail -30 "$t/console.log" >&2
        echo "target $name: no SSH after 60 s" >&2
        exit 1
    fi
    sleep 1
done
