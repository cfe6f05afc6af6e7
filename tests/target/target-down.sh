#!/bin/sh
# Stops one target and removes all it left: TERM to nspawn (the target powers off cleanly),
# KILL to anything still in its cgroups, then the cgroups (depth first), the relays, the
# netns and the root copy. Usage: target-down.sh WORK NAME. Safe after a partial start.
set -u
work=$1
name=$2
t=$work/targets/$name

touch "$t/stopping" 2>/dev/null
if [ -f "$t/nspawn.pid" ]; then
    kill -TERM "$(cat "$t/nspawn.pid")" 2>/dev/null
fi
if [ -f "$t/launcher.pid" ]; then
    launcher=$(cat "$t/launcher.pid")
    i=0
    while kill -0 "$launcher" 2>/dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
fi
for hierarchy in /sys/fs/cgroup/*/; do
    top=${hierarchy}target-$name
    [ -d "$top" ] || continue
    find "$top" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
        kill -KILL "$pid" 2>/dev/null
    done
done
for hierarchy in /sys/fs/cgroup/*/; do
    top=${hierarchy}target-$name
    [ -d "$top" ] || continue
    i=0
    until find "$top" -depth -type d -exec rmdir {} + 2>/dev/null || [ $i -ge 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
done
for relay in relay-host relay-netns; do
    if [ -f "$t/$relay.pid" ]; then
        kill "$(cat "$t/$relay.pid")" 2>/dev/null
    fi
done
ip netns del "$name" 2>/dev/null
rm -rf "$t/root" "$t/.#root.lck" "$t/proxy.sock"
exit 0
