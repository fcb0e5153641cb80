#!/usr/bin/env bash
# Builds (once per set of inputs) the bootable disk image of the metainit VM and
# prints its cache directory:
#
#   METAINIT_BIN=bin/metainit tests/vm/image.sh   prints $METAINIT_CACHE/vm/image-HASH
#
# The directory holds disk.img (raw ext4, the whole machine on one filesystem,
# made with `mke2fs -d` from a directory: no loop mount), and Debian's vmlinuz
# and initrd.img taken from the same tree, as a boot loader would load them.
#
# On the disk:
#   the host system from base.sh (bookworm minbase, linux-image-amd64, ...)
#   /sbin/metainit                                 METAINIT_BIN
#   /etc/metainit/partitions/{systemd,runit,console}/config.json
#                                                  `metainit spec` output, plus
#                                                  the test's resources (jq)
#   /var/lib/metainit/{systemd,runit}              tests/rootfs/build.sh trees
#   /var/lib/metainit/console                      busybox: the operator's way
#                                                  in (README.md)
#
# HASH covers this script, the base, the partition trees and the metainit
# binary: changing any of them makes a new image. Old images are pruned.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${METAINIT_CACHE:-/var/cache/metainit}/vm
bin=${METAINIT_BIN:-$repo/bin/metainit}
[ -x "$bin" ] || { echo "image.sh: $bin: no metainit binary (make build)" >&2; exit 1; }

base=$("$here/base.sh")
systemd_tree=$("$repo/tests/rootfs/build.sh" systemd)
runit_tree=$("$repo/tests/rootfs/build.sh" runit)

hash=$( {
	sha256sum "$here/image.sh" "$bin" | cut -d' ' -f1
	echo "$base" "$systemd_tree" "$runit_tree"
} | sha256sum | cut -c1-12)
out="$cache/image-$hash"
if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
# One build at a time; whoever waited finds it done.
exec 9>"$cache/.lock-image"
flock 9
if [ -f "$out/done" ]; then
	echo "$out"
	exit 0
fi
tmp=$(mktemp -d "$cache/.build-image.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
echo "assembling the VM image in $tmp" >&2
cp -a --reflink=auto "$base/root" "$root"
install -m 0755 "$bin" "$root/sbin/metainit"
lib="$root/var/lib/metainit"
mkdir -p "$lib" "$root/etc/metainit/partitions" "$root/var/log/metainit"

# --- systemd: the primary partition; it owns the network (systemd-networkd,
# DHCP from qemu's user-mode network) and its poweroff powers the machine off.
cp -a --reflink=auto "$systemd_tree" "$lib/systemd"
mkdir -p "$lib/systemd/etc/systemd/network"
cat > "$lib/systemd/etc/systemd/network/80-vm.network" <<'EOF'
[Match]
Type=ether

[Network]
DHCP=ipv4
EOF
chroot "$lib/systemd" systemctl enable systemd-networkd.service >/dev/null 2>&1

# --- runit: as built; its limits are in its config.json below.
cp -a --reflink=auto "$runit_tree" "$lib/runit"

# --- console: busybox init. It owns the serial console (an askfirst shell on
# ttyS0 for a person, `make vm`) and the virtio console hvc0 (a shell for
# vm_test.go). From there, /sbin/metainit and the control socket in
# /run/metainit (both bound in read-only) reach every partition, and
# /host/proc is the machine's /proc (so /host/proc/1/root is the machine's /).
c="$lib/console"
mkdir -p "$c"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,host/proc}
cp "$root/bin/busybox" "$c/bin/busybox"
chroot "$c" /bin/busybox --install -s
touch "$c/sbin/metainit"
cat > "$c/etc/inittab" <<'EOF'
ttyS0::askfirst:-/bin/sh
hvc0::respawn:/bin/sh
::shutdown:/bin/sync
EOF
echo 'root:x:0:0:root:/root:/bin/sh' > "$c/etc/passwd"
echo 'root:x:0:' > "$c/etc/group"
cat > "$c/etc/profile" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
PS1='console# '
echo "metainit console partition. Try: metainit list; metainit exec systemd -- bash -i"
echo "The machine's / is /host/proc/1/root; its cgroups /host/proc/1/root/sys/fs/cgroup."
EOF

# --- bundles: metainit's own spec, and only what this machine adds to it.
spec() { # NAME KIND [jq filter]
	mkdir -p "$root/etc/metainit/partitions/$1"
	"$bin" spec --init "$2" --rootfs "/var/lib/metainit/$1" --hostname "$1" |
		jq "${3:-.}" > "$root/etc/metainit/partitions/$1/config.json"
}
spec systemd systemd '.annotations["org.metainit.on-poweroff"] = "poweroff-machine"'
spec runit runit '.linux.resources.memory = {"limit": 67108864} | .linux.resources.pids = {"limit": 64}'
spec console busybox '
	.annotations["org.metainit.order"] = "-10"
	| .mounts += [
		{"destination": "/sbin/metainit", "type": "bind", "source": "/sbin/metainit", "options": ["bind", "ro"]},
		{"destination": "/run/metainit", "type": "bind", "source": "/run/metainit", "options": ["rbind", "ro"]},
		{"destination": "/host/proc", "type": "bind", "source": "/proc", "options": ["rbind"]}
	]
	| .linux.devices = [
		{"path": "/dev/ttyS0", "type": "c", "major": 4, "minor": 64, "fileMode": 432, "uid": 0, "gid": 0},
		{"path": "/dev/hvc0", "type": "c", "major": 229, "minor": 0, "fileMode": 432, "uid": 0, "gid": 0}
	]
	| .linux.resources.devices += [
		{"allow": true, "type": "c", "major": 4, "minor": 64, "access": "rwm"},
		{"allow": true, "type": "c", "major": 229, "minor": 0, "access": "rwm"}
	]'

# --- the disk: sparse, 3 GiB, about a third used.
truncate -s 3G "$tmp/disk.img"
mke2fs -q -t ext4 -L metainit-root -d "$root" "$tmp/disk.img"
cp "$base/vmlinuz" "$base/initrd.img" "$tmp/"
{
	echo "base $base"
	echo "systemd $systemd_tree"
	echo "runit $runit_tree"
	echo "metainit $("$bin" version) $(sha256sum "$bin" | cut -c1-12)"
	echo "kernel $(cat "$base/kernel-version")"
} > "$tmp/manifest"
rm -rf "$root"
touch "$tmp/done"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
# Keep this image and the one before it (a rebuilt binary must not leave a
# trail of 3 GiB files).
ls -dt "$cache"/image-* | tail -n +3 | xargs -r rm -rf
echo "$out"
