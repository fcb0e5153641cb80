package pid1

import (
	"fmt"
	"os"
	"strings"

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
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", nsd | unix.MS_NOEXEC, "nsdelegate"},
}

// MountMachine mounts what is not mounted yet. Errors are collected, not
// fatal: a PID 1 that stops on a failed mount leaves the machine unusable.
func MountMachine(logf func(string, ...any)) error {
	var errs []string
	for _, m := range machineMounts {
		if isMountPoint(m.target) {
			continue
		}
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, fmt.Sprintf("mkdir %s: %v", m.target, err))
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
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

// isMountPoint reports whether path is the root of a mount (it differs from
// its parent in device, or /proc/self/mountinfo lists it).
func isMountPoint(path string) bool {
	for _, mi := range readMountinfo() {
		if mi.target == path {
			return true
		}
	}
	return false
}

type mountInfo struct {
	target, fstype string
}

// readMountinfo lists the mounts of this mount namespace, in mount order.
func readMountinfo() []mountInfo {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []mountInfo
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		// Fields: id parent major:minor root target options [optional...] - fstype source superopts
		sep := 6
		for sep < len(f) && f[sep] != "-" {
			sep++
		}
		if sep+1 >= len(f) {
			continue
		}
		out = append(out, mountInfo{target: unescapeOctal(f[4]), fstype: f[sep+1]})
	}
	return out
}

// unescapeOctal undoes the kernel's \040-style escaping in mountinfo.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
