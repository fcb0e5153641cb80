#!/usr/bin/env bash
# make demo: boot an unmodified systemd and an unmodified runit side by side
# under metainit (as PID 1 of fresh namespaces of this machine), show them,
# and power everything off. Needs root; root filesystems are cached.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin/metainit
[ "$(id -u)" = 0 ] || { echo "make demo needs root (namespaces, mounts, cgroups)" >&2; exit 1; }

demo=$(mktemp -d /tmp/metainit-demo.XXXXXX)
export METAINIT_SOCKET=$demo/run/control.sock
runner=
cleanup() {
	if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
		kill -TERM "$runner" 2>/dev/null || true # the runner powers the instance off
		wait "$runner" 2>/dev/null || true
	fi
	for m in "$demo"/partitions/*/rootfs; do mountpoint -q "$m" && umount "$m"; done
	rm -rf "$demo"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
t0=$(date +%s%N)

step "Bundles: a cached bookworm rootfs per init, and 'metainit spec' for config.json"
for kind in systemd runit; do
	lower=$(tests/rootfs/build.sh "$kind")
	b=$demo/partitions/$kind
	mkdir -p "$b/rootfs" "$demo/overlay/$kind/upper" "$demo/overlay/$kind/work"
	mount -t overlay overlay -o "lowerdir=$lower,upperdir=$demo/overlay/$kind/upper,workdir=$demo/overlay/$kind/work" "$b/rootfs"
	(cd "$b" && "$bin" spec --init "$kind" > config.json)
	echo "$b/config.json  (rootfs: overlay over $lower)"
done

step "metainit boot --nested --partitions $demo/partitions --run-dir $demo/run"
"$bin" boot --nested --partitions "$demo/partitions" --run-dir "$demo/run" > "$demo/boot.log" 2>&1 &
runner=$!
for _ in $(seq 100); do "$bin" list >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 300); do
	[ "$("$bin" list --json | grep -c '"state": "ready"')" = 2 ] && break
	sleep 0.1
done
sed 's/^/  /' "$demo/boot.log"

step "metainit list"
"$bin" list

step "systemd judges systemd: systemctl is-system-running"
for _ in $(seq 100); do
	state=$("$bin" exec systemd -- systemctl is-system-running || true)
	[ "$state" = running ] && break
	sleep 0.2
done
echo "$state"

step "runit judges runit: sv status /etc/service/*"
"$bin" exec runit -- sh -c 'sv status /etc/service/*'

step "Each init is PID 1 of its own namespace"
for p in systemd runit; do
	printf '%-8s /proc/1/comm = %s\n' "$p" "$("$bin" exec "$p" -- cat /proc/1/comm)"
done

step "Neither sees the other's processes"
for p in systemd runit; do
	printf '%-8s sees: %s\n' "$p" "$("$bin" exec "$p" -- sh -c 'cat /proc/[0-9]*/comm' | sort -u | tr '\n' ' ')"
done

step "Both share the machine's network"
printf 'host     %s\n' "$(readlink /proc/self/ns/net)"
for p in systemd runit; do
	printf '%-8s %s\n' "$p" "$("$bin" exec "$p" -- readlink /proc/self/ns/net)"
done

step "metainit poweroff: each init stops by its own protocol"
"$bin" poweroff
rc=0; wait "$runner" || rc=$?
runner=
grep -E 'stopping|stopped|shutdown|powered off' "$demo/boot.log" | sed 's/^/  /'
echo "metainit boot --nested exited $rc"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
printf '\ndemo took %d.%03ds\n' $((ms / 1000)) $((ms % 1000))
exit "$rc"
