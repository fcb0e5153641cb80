#!/usr/bin/env bash
# Builds (once) and caches the VM's host system: Debian bookworm minbase with
# Debian's kernel and initramfs, and prints the cache directory.
#
#   tests/vm/base.sh        prints $METAINIT_CACHE/vm/base-HASH
#
# HASH covers this script. The directory holds:
#   root/                 the tree (the disk image is made from it by image.sh)
#   vmlinuz, initrd.img   Debian's kernel and the initrd its postinst made
#
# No loop mounts, no kernel build: mmdebstrap installs linux-image-amd64 into a
# directory and the package's own postinst runs update-initramfs in the chroot.
# The tree is built in a temporary directory and renamed into place, so an
# interrupted build never leaves a half tree that looks complete.
set -euo pipefail

cache=${METAINIT_CACHE:-/var/cache/metainit}/vm
here=$(cd "$(dirname "$0")" && pwd)
hash=$(sha256sum "$here/base.sh" | cut -c1-12)
out="$cache/base-$hash"

if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi

# What the machine itself runs, besides /sbin/metainit:
#   linux-image-amd64, initramfs-tools, e2fsprogs, zstd: kernel, initrd, fsck of /
#   (the initrd is built in a chroot, where the root device cannot be probed:
#   FSTYPE=ext4 tells initramfs-tools which fsck to include)
#   busybox-static: the tools of the console partition (image.sh)
#   systemd, udev, dbus: only for the comparison boot with init=/lib/systemd/systemd
include=linux-image-amd64,initramfs-tools,e2fsprogs,zstd,busybox-static,systemd,udev,dbus

# No udev runs after the initramfs on a metainit machine, so a driver the
# initramfs does not load is not loaded at all: force the virtio console's
# (hvc0, the test's shell) into it. virtio_blk and virtio_net are in already.
hook='#!/bin/sh
case "$1" in prereqs) exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
force_load virtio_console'

mkdir -p "$cache"
# One build at a time; whoever waited finds it done.
exec 9>"$cache/.lock-base"
flock 9
if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi
tmp=$(mktemp -d "$cache/.build-base.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building the VM host system in $tmp (mmdebstrap, bookworm)" >&2
mmdebstrap --quiet --variant=minbase --include="$include" \
	--setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
	--setup-hook='echo FSTYPE=ext4 > "$1/etc/initramfs-tools/conf.d/metainit-vm"' \
	--setup-hook="mkdir -p \"\$1/etc/initramfs-tools/hooks\"; printf '%s\n' '$hook' > \"\$1/etc/initramfs-tools/hooks/metainit-vm\"; chmod 755 \"\$1/etc/initramfs-tools/hooks/metainit-vm\"" \
	--setup-hook='echo "/dev/vda / ext4 errors=remount-ro 0 1" > "$1/etc/fstab"' \
	--customize-hook='echo metainit-vm > "$1/etc/hostname"' \
	--customize-hook='echo "root:metainit" | chroot "$1" chpasswd' \
	bookworm "$tmp/root" >&2

# The comparison boot (systemd alone as the machine's init) reports on the
# serial console once systemd says the boot is over; vm_test.go reads it.
# A transient unit waits, so this unit's own job does not hold the boot up.
cat > "$tmp/root/etc/systemd/system/vm-report.service" <<'UNIT'
[Unit]
Description=Report the boot result on the serial console (metainit VM test)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/bin/systemd-run --no-block --collect --unit=vm-report-wait /bin/sh -c 'systemctl is-system-running --wait >/dev/null; echo "VMREPORT systemd-alone state=$(systemctl is-system-running) failed=$(systemctl list-units --failed --plain --no-legend | wc -l) $(systemd-analyze time | head -1)" >/dev/ttyS0; systemctl list-units --failed --plain --no-legend >/dev/ttyS0'

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/vm-report.service "$tmp/root/etc/systemd/system/multi-user.target.wants/vm-report.service"

kver=$(ls "$tmp/root/lib/modules" | sort -V | tail -1)
cp "$tmp/root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
cp "$tmp/root/boot/initrd.img-$kver" "$tmp/initrd.img"
echo "$kver" > "$tmp/kernel-version"
touch "$tmp/done"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
# Older bases are not needed once this one exists.
for old in "$cache"/base-*; do
	[ "$old" = "$out" ] || rm -rf "$old"
done
echo "$out"
