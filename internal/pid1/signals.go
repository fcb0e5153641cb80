package pid1

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// CatchSignals routes every catchable signal to the returned channel. It must
// run first in main: the Go runtime otherwise exits on SIGTERM, SIGHUP,
// SIGINT, SIGQUIT, SIGUSR1/2 and SIGPIPE, and PID 1 exiting panics the kernel.
//
// Left out: SIGKILL and SIGSTOP (cannot be caught), the synchronous faults
// (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP: the runtime turns them into
// panics), SIGURG (the runtime's preemption signal), SIGPROF, and 32/33
// (reserved by libc).
func CatchSignals() <-chan os.Signal {
	ch := make(chan os.Signal, 64)
	var sigs []os.Signal
	for s := syscall.Signal(1); s <= 64; s++ {
		switch s {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL,
			unix.SIGTRAP, unix.SIGURG, unix.SIGPROF, 32, 33:
			continue
		}
		sigs = append(sigs, s)
	}
	signal.Notify(ch, sigs...)
	return ch
}

// DisableCtrlAltDel makes the kernel send SIGINT to PID 1 on Ctrl-Alt-Del
// instead of rebooting at once (reboot(2), LINUX_REBOOT_CMD_CAD_OFF). Only
// the real PID 1 may do this.
func DisableCtrlAltDel() error {
	return unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
}
