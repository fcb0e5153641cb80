package partition

import (
	"fmt"
	"syscall"
)

// Exit is how a partition's init ended, and what that means.
type Exit struct {
	Status syscall.WaitStatus
}

// Kernel: reboot(2) called inside a non-initial PID namespace kills that
// namespace's init with SIGINT for POWER_OFF/HALT and SIGHUP for RESTART
// (kernel/pid_namespace.c, reboot_pid_ns).

// Poweroff: the init powered its partition off (or halted it).
func (e Exit) Poweroff() bool {
	return e.Status.Signaled() && e.Status.Signal() == syscall.SIGINT
}

// Reboot: the init asked for its partition to be rebooted.
func (e Exit) Reboot() bool {
	return e.Status.Signaled() && e.Status.Signal() == syscall.SIGHUP
}

// Clean: exit status 0.
func (e Exit) Clean() bool { return e.Status.Exited() && e.Status.ExitStatus() == 0 }

func (e Exit) String() string {
	switch {
	case e.Poweroff():
		return "killed by SIGINT: poweroff"
	case e.Reboot():
		return "killed by SIGHUP: reboot"
	case e.Status.Signaled():
		return "killed by " + SignalName(e.Status.Signal())
	case e.Status.Exited():
		return fmt.Sprintf("exited with status %d", e.Status.ExitStatus())
	}
	return fmt.Sprintf("wait status %#x", int(e.Status))
}
