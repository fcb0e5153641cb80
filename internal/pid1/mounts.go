package pid1

import (
	"fmt"
	"os"
	"strings"

	"github.com/metainit/metainit/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// A mount is one API filesystem PID 1 provides. The table below is applied in
// order; each entry is skipped when its target is already a mount point
// (an initramfs usually mounted /proc, /sys, /dev and /run already).
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

func (m mount) String() string {
	return fmt.Sprintf("%s on %s type %s (%s)", m.source, m.target, m.fstype, m.data)
}

const nsd = unix.MS_NOSUID | unix.MS_NODEV

// machineMounts are what a machine's PID 1 must mount. cgroup2 is last so that
// it lands on the /sys it belongs to; it is the only cgroup hierarchy metainit
// uses on a machine it boots (libcontainer caches the cgroup mode on its first
// call, so this runs before any partition starts).
var machineMounts = []mount{
	{"proc", "/proc", "proc", nsd | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", nsd | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", nsd, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", nsd, "mode=0755"},
	// favordynmods: moving a process between cgroups (every partition start
	// and exec does) no longer waits for an RCU grace period, about 15 ms per
	// move (measured by make bench); forks pay a little more. Kernels before
	// 6.0 refuse the option: then without it.
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", nsd | unix.MS_NOEXEC, "nsdelegate,favordynmods"},
}

// mountFallback is the data a mount is retried with when the kernel refuses
// the table's options.
var mountFallback = map[string]string{"/sys/fs/cgroup": "nsdelegate"}

// MountMachine makes / writable (see remountRootRW) and mounts what is not
// mounted yet. Errors are collected, not fatal: a PID 1 that stops on a failed
// mount leaves the machine unusable.
func MountMachine(logf func(string, ...any)) error {
	var errs []string
	if err := remountRootRW(logf); err != nil {
		errs = append(errs, err.Error())
	}
	for _, m := range machineMounts {
		if isMountPoint(m.target) {
			continue
		}
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, fmt.Sprintf("mkdir %s: %v", m.target, err))
			continue
		}
		err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		if fb, ok := mountFallback[m.target]; ok && err == unix.EINVAL {
			logf("mount %s: %v; again with %s", m, err, fb)
			m.data = fb
			err = unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("mount %s: %v", m, err))
			continue
		}
		logf("mounted %s", m)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// remountRootRW remounts / read-write, as a machine's init does
// (systemd-remount-fs, sysvinit's checkroot.sh): boot loaders pass `ro` so
// that the initramfs can fsck the root filesystem before anything writes to it
// (Debian's does), and leave the read-write remount to init. Without it the
// log, the control socket's siblings and every partition whose rootfs lives on
// the root disk are read-only. An /etc/fstab entry for / with the option `ro`
// keeps / read-only, as it would under systemd.
func remountRootRW(logf func(string, ...any)) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return fmt.Errorf("statfs /: %w", err)
	}
	if st.Flags&unix.ST_RDONLY == 0 {
		return nil
	}
	if fstabRootReadOnly() {
		logf("/ stays read-only (ro in /etc/fstab)")
		return nil
	}
	// MS_REMOUNT replaces the mount's flags: keep those / has (ST_* and MS_*
	// share their values for these), drop only read-only.
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_SYNCHRONOUS | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|keep, ""); err != nil {
		return fmt.Errorf("remount / read-write: %w", err)
	}
	logf("remounted / read-write")
	return nil
}

// fstabRootReadOnly reports whether /etc/fstab mounts / with the option ro.
func fstabRootReadOnly() bool {
	b, err := os.ReadFile("/etc/fstab")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") || f[1] != "/" {
			continue
		}
		for _, o := range strings.Split(f[3], ",") {
			if o == "ro" {
				return true
			}
		}
	}
	return false
}

// isMountPoint reports whether path is the root of a mount (it differs from
// its parent in device, or /proc/self/mountinfo lists it).
func isMountPoint(path string) bool {
	for _, mi := range mountinfo.Read() {
		if mi.Target == path {
			return true
		}
	}
	return false
}
