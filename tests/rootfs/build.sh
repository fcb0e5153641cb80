#!/usr/bin/env bash
# Builds (once) and caches a Debian bookworm root filesystem for one init system,
# and prints the path of the cached tree.
#
#   tests/rootfs/build.sh KIND        KIND: systemd | runit | sysvinit | busybox
#
# The tree lives in $METAINIT_CACHE (default /var/cache/metainit)/rootfs/KIND-HASH,
# where HASH covers the kind's recipe, so editing a recipe rebuilds that kind only.
# Trees are built into a temporary directory and renamed into place under a lock,
# so an interrupted or concurrent build never leaves a half tree that looks
# complete. Tests never boot the cached tree itself: they lay an overlay over it
# (the partition writes to the upper layer only).
set -euo pipefail

kind=${1:?usage: build.sh systemd|runit|sysvinit|busybox|dual}
cache=${METAINIT_CACHE:-/var/cache/metainit}/rootfs
recipe_version=1 # bump to rebuild every kind

# A long-running service for each init to supervise, so there is something to see.
svc='#!/bin/sh
exec sleep infinity'

case "$kind" in
systemd)
	include=systemd-sysv,dbus
	hooks=(
		# A partition has no real ttys; console-getty covers /dev/console.
		--customize-hook='chroot "$1" systemctl mask getty@tty1.service >/dev/null 2>&1 || true'
		--customize-hook='echo "root:metainit" | chroot "$1" chpasswd'
	)
	;;
runit)
	include=runit,runit-init
	hooks=(
		--customize-hook='mkdir -p "$1/etc/sv/hello"'
		--customize-hook="printf '%s\n' '$svc' > \"\$1/etc/sv/hello/run\"; chmod 755 \"\$1/etc/sv/hello/run\""
		# /etc/service is a symlink in Debian: resolve it inside the tree, not on the host.
		--customize-hook='chroot "$1" ln -sf /etc/sv/hello /etc/service/hello'
		# Debian enables gettys on tty1-6; a partition has no ttys, only /dev/console.
		--customize-hook='chroot "$1" sh -c "rm -f /etc/service/getty-tty*"'
	)
	;;
sysvinit)
	include=sysvinit-core
	hooks=(
		# No gettys on ttyN (a partition has none): one on the console instead.
		--customize-hook='sed -i -e "s/^\([1-6]\):/#\1:/" "$1/etc/inittab"'
		--customize-hook='echo "co:2345:respawn:/sbin/getty -L console 115200 vt100" >> "$1/etc/inittab"'
	)
	;;
dual)
	# The original MetaInit scenario: one system with two inits installed,
	# each booted as a partition rooted at the same /. runit without
	# runit-init: systemd-sysv owns /sbin/init.
	include=systemd-sysv,dbus,runit
	hooks=(
		--customize-hook='mkdir -p "$1/etc/sv/hello"'
		--customize-hook="printf '%s\n' '$svc' > \"\$1/etc/sv/hello/run\"; chmod 755 \"\$1/etc/sv/hello/run\""
		--customize-hook='chroot "$1" ln -sf /etc/sv/hello /etc/service/hello'
		--customize-hook='chroot "$1" sh -c "rm -f /etc/service/getty-tty*"'
		--customize-hook='chroot "$1" systemctl mask getty@tty1.service >/dev/null 2>&1 || true'
	)
	;;
busybox)
	include=busybox-static
	hooks=(
		--customize-hook='ln -sf /bin/busybox "$1/sbin/init"'
		--customize-hook='printf "%s\n" "::sysinit:/bin/busybox mkdir -p /run/hello" "::respawn:/bin/busybox sleep 86400" "::shutdown:/bin/busybox sync" > "$1/etc/inittab"'
	)
	;;
*)
	echo "build.sh: unknown kind $kind" >&2
	exit 2
	;;
esac

hash=$(printf '%s\n' "$recipe_version" "$kind" "$include" "${hooks[@]}" | sha256sum | cut -c1-12)
out="$cache/$kind-$hash"
if [ -d "$out" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock-$kind"
flock 9
if [ -d "$out" ]; then # built by someone else while we waited
	echo "$out"
	exit 0
fi
tmp=$(mktemp -d "$cache/.build-$kind.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building $kind rootfs in $tmp (mmdebstrap, bookworm)" >&2
mmdebstrap --quiet --variant=minbase --include="$include" \
	--customize-hook='rm -f "$1/etc/hostname"' \
	"${hooks[@]}" bookworm "$tmp/rootfs" >&2
mv "$tmp/rootfs" "$out"
echo "$out"
