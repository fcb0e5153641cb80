#!/usr/bin/env bash
# make vm: boots the metainit VM image on this terminal, the serial console on
# stdin/stdout, as a boot loader would (Debian's kernel and initrd, root on a
# virtio disk, init=/sbin/metainit). The cached image is not changed: its
# writes go to a temporary overlay (snapshot=on) and are gone when qemu ends.
#
#   METAINIT_BIN=bin/metainit tests/vm/run.sh
#   VM_APPEND="metainit.rescue=1"   more kernel command line
#   METAINIT_VM_ACCEL=kvm|tcg       skip the KVM probe
#
# Ctrl-A x quits qemu; Ctrl-A c switches to the qemu monitor and back
# (sendkey ctrl-alt-delete, system_powerdown, quit). See README.md here.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
img=$("$here/image.sh")
run=$(mktemp -d /tmp/metainit-vm.XXXXXX)
trap 'rm -rf "$run"' EXIT

# KVM only if it really boots the kernel (on some nested hosts /dev/kvm opens
# and the guest then hangs): the same probe as vm_test.go.
accel=${METAINIT_VM_ACCEL:-}
if [ -z "$accel" ]; then
	accel=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		timeout 8 qemu-system-x86_64 -accel kvm -cpu host -m 256 -display none -nodefaults \
			-no-user-config -no-reboot -serial "file:$run/probe.log" -kernel "$img/vmlinuz" \
			-append "console=ttyS0 panic=-1" >/dev/null 2>&1 || true
		grep -q "Linux version" "$run/probe.log" 2>/dev/null && accel=kvm
	fi
fi
cpu=max
[ "$accel" = kvm ] && cpu=host
echo "metainit VM: $img ($accel); Ctrl-A x quits, Ctrl-A c is the qemu monitor." >&2
echo "When the boot settles, press Enter for a shell in the console partition." >&2
echo "Its second console, hvc0, is the unix socket $run/hvc0.sock." >&2
sleep 1

qemu-system-x86_64 -name metainit-vm -accel "$accel" -cpu "$cpu" -m 1536 -smp 2 \
	-nographic -nodefaults -no-user-config -serial mon:stdio \
	-kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
	-append "root=/dev/vda ro console=ttyS0 panic=10 init=/sbin/metainit ${VM_APPEND:-}" \
	-drive "file=$img/disk.img,format=raw,if=virtio,snapshot=on" \
	-netdev user,id=net0,restrict=on -device virtio-net-pci,netdev=net0 \
	-device virtio-serial-pci \
	-chardev "socket,id=hvc0,path=$run/hvc0.sock,server=on,wait=off" \
	-device virtconsole,chardev=hvc0
