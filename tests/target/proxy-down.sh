#!/bin/sh
# Stops the proxy of proxy-up.sh and unmounts the nspawn tmpfs if it mounted it.
# Usage: proxy-down.sh WORK. Safe to run twice or after a partial proxy-up.sh.
set -u
dir=$1/proxy
if [ -f "$dir/tinyproxy.pid" ]; then
    kill "$(cat "$dir/tinyproxy.pid")" 2>/dev/null
    rm -f "$dir/tinyproxy.pid"
fi
if [ -f "$dir/mounted-nspawn-tmpfs" ]; then
    umount /run/systemd/nspawn 2>/dev/null || umount -l /run/systemd/nspawn
    rm -f "$dir/mounted-nspawn-tmpfs"
fi
exit 0
