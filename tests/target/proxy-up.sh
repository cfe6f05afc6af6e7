#!/bin/sh
# Starts what every target of one test run shares: a deny-by-default HTTP proxy on the host's
# loopback that admits only the Debian and PyPI mirrors this host is configured for (read
# from its apt and pip settings now, never written down), and the tmpfs nspawn needs on
# /run/systemd/nspawn (it refuses to work when /run is on disk).
# Usage: proxy-up.sh WORK   (state in WORK/proxy; proxy-down.sh WORK undoes it)
set -eu
work=$1
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
dir=$work/proxy
mkdir -p "$dir"
chown nobody:nogroup "$dir"

"$python" "$here/mirrors.py" hosts | sed 's/\./\\./g; s/.*/^&$/' > "$dir/filter"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/tinyproxy.conf" <<CONF
User nobody
Group nogroup
Port $port
Listen 127.0.0.1
Timeout 600
MaxClients 64
LogFile "$dir/tinyproxy.log"
LogLevel Connect
Filter "$dir/filter"
FilterType ere
FilterURLs Off
FilterDefaultDeny Yes
ConnectPort 443
CONF
setsid tinyproxy -d -c "$dir/tinyproxy.conf" < /dev/null > "$dir/stderr.log" 2>&1 &
echo $! > "$dir/tinyproxy.pid"
echo "$port" > "$dir/port"

if ! mountpoint -q /run/systemd/nspawn; then
    mkdir -p /run/systemd/nspawn
    mount -t tmpfs -o mode=0755 paas-target-nspawn /run/systemd/nspawn
    touch "$dir/mounted-nspawn-tmpfs"
fi

i=0
until "$python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 50 ] || { cat "$dir/stderr.log" >&2; echo "tinyproxy did not start" >&2; exit 1; }
    sleep 0.1
done
