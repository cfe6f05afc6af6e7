#!/bin/sh
# Builds the golden target image: a Debian bookworm root that boots with systemd under
# systemd-nspawn, with sshd (root login by key only), python3 for ansible, and the few
# changes nested runc needs. Usage: build-image.sh WORK  (makes WORK/image and WORK/id_ed25519)
#
# Only two things come from this host at run time and are never committed: its CA
# certificates (the package proxy intercepts TLS) and a fresh SSH key.
set -eu
work=$1
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
image=$work/image
mirror=$("$python" "$here/mirrors.py" debian)

rm -rf "$image.tmp"
mkdir -p "$image.tmp"
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,python3,python3-apt,ca-certificates,iproute2,procps,curl,kmod \
    bookworm "$image.tmp" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# The host's CA (the proxy's included), so that pip over HTTPS works inside.
cp /usr/local/share/ca-certificates/*.crt "$image.tmp/usr/local/share/ca-certificates/" 2>/dev/null || true
chroot "$image.tmp" update-ca-certificates > /dev/null 2>&1

# apt and pip go through the relay on the target's loopback; nothing else does.
cat > "$image.tmp/etc/apt/apt.conf.d/01test-proxy" <<CONF
Acquire::http::Proxy "http://127.0.0.1:3128";
Acquire::https::Proxy "http://127.0.0.1:3128";
CONF
cat > "$image.tmp/etc/pip.conf" <<CONF
[global]
proxy = http://127.0.0.1:3128
cert = /etc/ssl/certs/ca-certificates.crt
CONF

# Root logs in with the generated key only.
rm -f "$work/id_ed25519" "$work/id_ed25519.pub"
ssh-keygen -q -t ed25519 -N '' -C paas-target -f "$work/id_ed25519"
mkdir -p -m 700 "$image.tmp/root/.ssh"
cp "$work/id_ed25519.pub" "$image.tmp/root/.ssh/authorized_keys"
chmod 600 "$image.tmp/root/.ssh/authorized_keys"
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' \
    > "$image.tmp/etc/ssh/sshd_config.d/target.conf"

# nspawn mounts the cgroup v1 controllers and /proc/sys/net read-only; runc inside needs
# them writable (the netns is the target's own, and there is no user namespace).
cat > "$image.tmp/etc/systemd/system/target-writable.service" <<'UNIT'
[Unit]
Description=Writable cgroup controllers and /proc/sys/net for nested runc
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d"; done; mount --bind /proc/sys/net /proc/sys/net; mount -o remount,bind,rw /proc/sys/net'

[Install]
WantedBy=sysinit.target
UNIT
chroot "$image.tmp" systemctl enable target-writable.service ssh.service > /dev/null 2>&1
# Lookups of the host's nameserver cannot succeed from the netns: fail them at once.
: > "$image.tmp/etc/resolv.conf"
echo bookworm > "$image.tmp/etc/hostname"
: > "$image.tmp/etc/machine-id"
chroot "$image.tmp" ssh-keygen -A > /dev/null  # one host key for every copy: test targets
# debootstrap's apt lists stay: with empty lists the apt module's cache_valid_time would
# skip the update and find no packages.

rm -rf "$image"
mv "$image.tmp" "$image"
