// Package pid1 holds the duties of a process that is PID 1, one file each:
// signals.go (no signal may kill PID 1), reaper.go (orphans), mounts.go (the
// API filesystems), cgroups.go, hostname.go, log.go (console and kernel log),
// nested.go (the same PID 1 inside fresh namespaces of an ordinary machine)
// and shutdown.go (the one way out: kill, sync, unmount, reboot(2)).
package pid1
