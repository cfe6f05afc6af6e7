#!/bin/sh
# The launcher of one target (started in the background by target-up.sh): moves itself into
# the cgroup target-NAME of every hierarchy, so that nspawn's supervisor/ and payload/ (and
# the target's own containers) are per target, then boots the target and boots it again
# whenever it reboots (nspawn exits 133), until target-down.sh says stop.
# Usage: launch.sh WORK NAME
set -u
t=$1/targets/$2
name=$2
for hierarchy in /sys/fs/cgroup/*/; do
    mkdir -p "${hierarchy}target-$name"
    echo $$ > "${hierarchy}target-$name/cgroup.procs"
done
while [ ! -e "$t/stopping" ]; do
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=0 systemd-nspawn --quiet --boot \
        --directory="$t/root" --machine="$name" --register=no --keep-unit \
        --network-namespace-path="/run/netns/$name" --capability=CAP_NET_ADMIN \
        --system-call-filter='@keyring bpf' --console=pipe < /dev/null >> "$t/console.log" 2>&1 &
    echo $! > "$t/nspawn.pid"
    wait $!
    code=$?
    echo "launcher: nspawn exited with $code" >> "$t/console.log"
    [ "$code" -eq 133 ] || break
done
rm -f "$t/nspawn.pid"
