package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// helperOrphans is the hidden first argument of the orphan maker:
// `bench __orphans N CGROUP`, run inside the PID namespace under test (by
// nsenter --pid, so its parent is outside it). It joins /CGROUP, forks N
// children that exit at once, waits until all N are zombies (without
// reaping them), prints CLOCK_MONOTONIC and exits. Its N zombies are then
// re-parented, all at once, to the namespace's PID 1, which must reap them.
const helperOrphans = "__orphans"

func orphansMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: __orphans N CGROUP")
		return 2
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "orphans: bad N")
		return 2
	}
	if err := joinCgroup(args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "orphans:", err)
		return 1
	}
	runtime.LockOSThread()
	pids := make([]int, 0, n)
	for len(pids) < n {
		// A bare fork: the child runs no Go code but the exit below.
		r, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
		if errno == unix.EAGAIN || errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			fmt.Fprintln(os.Stderr, "orphans: fork:", errno)
			return 1
		}
		if r == 0 {
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
		}
		pids = append(pids, int(r))
	}
	for _, pid := range pids {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
	}
	fmt.Println(int64(monoNow()))
	return 0
}

// pidsRoot is where the pids controller is mounted.
func pidsRoot() (string, error) {
	for _, m := range mounts() {
		if m.fstype == "cgroup2" && filepath.Base(m.target) != "unified" {
			return m.target, nil // a pure cgroup2 machine
		}
		if m.fstype == "cgroup" {
			for _, o := range strings.Split(m.options, ",") {
				if o == "pids" {
					return m.target, nil
				}
			}
		}
	}
	return "", errors.New("no pids cgroup controller mounted")
}

// reapOnce makes n orphans in the PID namespace whose init has host PID
// target, and returns how long that init took to reap all of them: from
// the moment the orphans' parent exits (all n already zombies) until the
// pids controller of their cgroup counts none (a zombie stays charged until
// it is reaped).
func (e *env) reapOnce(target, n int, cg string) (time.Duration, error) {
	root, err := pidsRoot()
	if err != nil {
		return 0, err
	}
	if err := mkCgroup(cg); err != nil {
		return 0, err
	}
	defer e.removeCgroups(cg)
	current := filepath.Join(root, cg, "pids.current")
	done := make(chan time.Duration, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		armed := false
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(current)
			if err == nil {
				v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				if v >= n {
					armed = true
				}
				if armed && v == 0 {
					done <- monoNow()
					return
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	cmd := exec.Command("nsenter", "--target", strconv.Itoa(target), "--pid", "--", e.self, helperOrphans, strconv.Itoa(n), cg)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := e.start(cmd); err != nil {
		return 0, err
	}
	err = cmd.Wait()
	e.forget(cmd)
	if err != nil {
		return 0, fmt.Errorf("orphan maker: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	t0, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("orphan maker printed %q", out.String())
	}
	select {
	case t1 := <-done:
		return t1 - time.Duration(t0), nil
	case <-time.After(60 * time.Second):
		b, _ := os.ReadFile(current)
		return 0, fmt.Errorf("orphans not reaped after 60s (pids.current %s)", strings.TrimSpace(string(b)))
	}
}

// tini is tini as PID 1 of a fresh PID namespace (unshare --pid --fork
// --mount-proc tini -- sleep): the peer of the reaping figure.
type tini struct {
	cmd  *exec.Cmd
	pid1 int
}

func (e *env) startTini() (*tini, error) {
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "tini", "--", "sleep", "1000000")
	if err := e.start(cmd); err != nil {
		return nil, err
	}
	t := &tini{cmd: cmd}
	e.onCleanup(func() {
		_ = unix.Kill(t.pid1, unix.SIGKILL) // ends its namespace
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		e.forget(cmd)
	})
	pid, err := waitChild(cmd.Process.Pid, 5*time.Second)
	if err != nil {
		return nil, err
	}
	t.pid1 = pid
	// Wait until it is tini (not unshare's child before exec) with its child.
	if _, err := waitChild(pid, 5*time.Second); err != nil {
		return nil, err
	}
	return t, nil
}
