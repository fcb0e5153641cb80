// Package specs writes OCI runtime specs (config.json) that boot an
// unmodified init system as a metainit partition.
//
// `runc spec` makes a spec for one application: it drops almost every
// capability, sets NoNewPrivileges, mounts cgroups read-only and denies all
// devices. An init needs the opposite on each point, as systemd's container
// interface and LXC's practice say: CAP_SYS_ADMIN and CAP_SYS_BOOT, its own
// cgroup namespace with a writable cgroup mount, tmpfs on /run, a private
// /dev with its own devpts, and a console.
package specs

import (
	"fmt"
	"path/filepath"

	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// Options shape a generated spec.
type Options struct {
	Kind     string // systemd, runit, sysvinit, busybox, generic or auto
	Rootfs   string // root.path; relative paths are relative to the bundle
	Hostname string // empty: the partition keeps the machine's hostname
	// BundleDir resolves a relative Rootfs for "auto" detection.
	BundleDir string
}

// allCaps is every capability an init may use. Those the machine's metainit
// does not hold itself are dropped, with a warning, when the partition starts.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// Left out on purpose: CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_MAC_*:
// a partition shares the kernel and the clock with the others. And
// CAP_DAC_READ_SEARCH: with it, open_by_handle_at(2) through any bind mount
// (a rootfs that is a directory of the machine's file system, its cgroup
// mount) opens any inode of that file system — the "shocker" escape. No init
// here needs it (the integration tests boot all four without it).

// Generate returns a spec that boots opts.Kind unmodified.
func Generate(opts Options) (*rspec.Spec, error) {
	if opts.Rootfs == "" {
		opts.Rootfs = "rootfs"
	}
	kind := opts.Kind
	if kind == "" || kind == "auto" {
		root := opts.Rootfs
		if !filepath.IsAbs(root) {
			root = filepath.Join(opts.BundleDir, root)
		}
		k, _, err := partition.DetectKind(root, "/sbin/init")
		if err != nil {
			return nil, fmt.Errorf("detect init in %s: %w", root, err)
		}
		kind = string(k)
	}
	k, err := partition.ParseKind(kind)
	if err != nil {
		return nil, err
	}
	args := []string{"/sbin/init"}
	if k == partition.KindBusybox {
		args = []string{"/bin/busybox", "init"}
	}
	caps := append([]string(nil), allCaps...)
	s := &rspec.Spec{
		Version:  rspec.Version,
		Hostname: opts.Hostname,
		Root:     &rspec.Root{Path: opts.Rootfs},
		Process: &rspec.Process{
			Terminal: true, // /dev/console is a pty metainit holds
			User:     rspec.User{UID: 0, GID: 0},
			Args:     args,
			Env:      []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:      "/",
			Capabilities: &rspec.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: []rspec.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 524288}},
		},
		Mounts: []rspec.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			// Read-only /sys keeps the partition's udev and networkd off the host's devices.
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			// Writable, inside the partition's own cgroup namespace: an init manages its cgroups.
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "rw"}},
			{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755", "size=20%"}},
			{Destination: "/run/lock", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "mode=1777", "size=5m"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &rspec.Linux{
			// No network namespace: the partition shares the machine's network.
			Namespaces: []rspec.LinuxNamespace{
				{Type: rspec.PIDNamespace}, {Type: rspec.MountNamespace}, {Type: rspec.CgroupNamespace},
				{Type: rspec.UTSNamespace}, {Type: rspec.IPCNamespace},
			},
			Resources: &rspec.LinuxResources{
				// Deny all, then metainit (libcontainer) allows the standard nodes:
				// null, zero, full, random, urandom, tty, console, ptmx, pts.
				Devices: []rspec.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
		Annotations: map[string]string{
			partition.AnnInit:        string(k),
			partition.AnnOrder:       "0",
			partition.AnnRestart:     string(partition.RestartOnFailure),
			partition.AnnStopTimeout: partition.DefaultStopTimeout.String(),
		},
	}
	if k == partition.KindGeneric {
		s.Annotations[partition.AnnStopSignal] = "SIGTERM"
	}
	return s, nil
}
