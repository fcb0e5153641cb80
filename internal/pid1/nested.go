package pid1

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// NestedEnv marks a metainit that is PID 1 of namespaces made by RunNested,
// not of a machine: the machine-only steps (devtmpfs, cgroup2, Ctrl-Alt-Del,
// unmounting, hostname) are skipped; everything else is the same code.
const NestedEnv = "METAINIT_NESTED"

// IsNested reports whether this PID 1 runs nested.
func IsNested() bool { return os.Getenv(NestedEnv) == "1" }

// RunNested runs PID 1 (this binary with args) in new PID, mount and UTS
// namespaces of the current machine, and follows it as a machine would:
// a reboot starts it again, a poweroff or halt returns 0. Ctrl-C or SIGTERM
// to the runner asks the instance to power off (SIGUSR2 to its PID 1).
// cleanup runs after each instance ends, whatever the cause.
func RunNested(args []string, cleanup func(), logf func(string, ...any)) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	defer signal.Stop(sigs)
	for {
		cmd := exec.Command("/proc/self/exe", args...)
		cmd.Env = append(os.Environ(), NestedEnv+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS,
			Setsid:     true, // the terminal's Ctrl-C reaches the runner, not PID 1
		}
		if err := cmd.Start(); err != nil {
			logf("nested: start: %v", err)
			return 1
		}
		logf("nested: instance started as host pid %d", cmd.Process.Pid)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var err error
	wait:
		for {
			select {
			case s := <-sigs:
				logf("nested: %s: asking the instance to power off", s)
				_ = cmd.Process.Signal(unix.SIGUSR2)
			case err = <-exited:
				break wait
			}
		}
		cleanup()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled() && ws.Signal() == unix.SIGHUP:
			logf("nested: instance rebooted; starting it again")
			continue
		case ws.Signaled() && ws.Signal() == unix.SIGINT:
			logf("nested: instance powered off")
			return 0
		case err == nil:
			logf("nested: instance exited")
			return 0
		default:
			logf("nested: instance ended: %v", describe(ws, err))
			return 1
		}
	}
}

func describe(ws syscall.WaitStatus, err error) string {
	if ws.Signaled() {
		return fmt.Sprintf("killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
	}
	return err.Error()
}

// EnterNested prepares the namespaces RunNested made: mounts stop propagating
// to the host (but the host's still reach the instance, as they would reach a
// machine's PID 1: a rootfs mounted later can be a partition after reload),
// and /proc shows this PID namespace. With root set, the
// instance's / becomes root, as a machine booted from that disk would see
// it (the host's /sys and /dev are bound in: they are the machine's).
func EnterNested(root string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / a slave of the host's mounts: %w", err)
	}
	if root != "" {
		if err := pivotInto(root); err != nil {
			return fmt.Errorf("root %s: %w", root, err)
		}
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}

func pivotInto(root string) error {
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	for _, d := range []string{"/sys", "/dev"} {
		if err := os.MkdirAll(root+d, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(d, root+d, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", d, err)
		}
	}
	if err := os.MkdirAll(root+"/proc", 0o555); err != nil {
		return err
	}
	if err := unix.Chdir(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; a lazy
	// unmount of "." then drops it (see pivot_root(2), NOTES).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// ProtectFromOOM keeps the OOM killer away from PID 1 (the machine's PID 1 is
// exempt anyway; a nested one is not). Partitions are given an explicit
// oom_score_adj of their own, since it is inherited.
func ProtectFromOOM() error {
	return os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0)
}
