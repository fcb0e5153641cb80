package pid1

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/metainit/metainit/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// Ending is how the machine ends: the reboot(2) command it finishes with.
type Ending int

const (
	Poweroff Ending = unix.LINUX_REBOOT_CMD_POWER_OFF
	Reboot   Ending = unix.LINUX_REBOOT_CMD_RESTART
	Halt     Ending = unix.LINUX_REBOOT_CMD_HALT
)

func (e Ending) String() string {
	switch e {
	case Poweroff:
		return "poweroff"
	case Reboot:
		return "reboot"
	case Halt:
		return "halt"
	}
	return fmt.Sprintf("reboot-cmd(%#x)", int(e))
}

// killGrace is how long the processes left after every partition stopped get
// between SIGTERM and SIGKILL.
const killGrace = 2 * time.Second

// Finish is the last step of every shutdown, once the partitions are stopped:
// SIGTERM then SIGKILL to whatever is left, sync, unmount (machine only), and
// reboot(2). In a nested instance reboot(2) ends the PID namespace (the kernel
// kills its init: SIGINT for poweroff/halt, SIGHUP for reboot), which is how
// the runner outside learns the outcome. Finish never returns.
func Finish(e Ending, machine bool, reaper *Reaper, log *Log) {
	logf := log.Printf
	step := func(name string, f func()) {
		t := time.Now()
		f()
		logf("shutdown: %s done in %.3fs", name, time.Since(t).Seconds())
	}
	step("kill remaining processes", func() { killAll(reaper, logf) })
	step("sync", unix.Sync)
	if machine {
		// metainit's own log file is the last file open for writing on /;
		// from here on the console and the kernel log carry the messages.
		log.CloseFiles()
		step("unmount", func() { unmountAll(logf) })
		step("sync", unix.Sync)
	}
	logf("shutdown: %s", e)
	err := unix.Reboot(int(e))
	// Still here: reboot(2) failed. PID 1 must not exit (that panics the
	// kernel); a nested instance may, and its runner reports it.
	logf("shutdown: reboot(2) %s failed: %v", e, err)
	if !machine {
		os.Exit(1)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// killAll signals every process but PID 1 (kill(-1) skips the caller and, in
// a PID namespace, reaches only that namespace), reaping as they go.
func killAll(reaper *Reaper, logf func(string, ...any)) {
	_ = unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(killGrace)
	for time.Now().Before(deadline) {
		reaper.Reap()
		if len(children()) == 0 && len(userProcesses()) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	logf("shutdown: processes left after %s: %s; sending SIGKILL", killGrace, strings.Join(userProcesses(), ", "))
	_ = unix.Kill(-1, unix.SIGKILL)
	for i := 0; i < 100 && len(children()) > 0; i++ {
		reaper.Reap()
		time.Sleep(10 * time.Millisecond)
	}
}

// pfKthread is PF_KTHREAD in the flags of /proc/PID/stat.
const pfKthread = 0x00200000

// userProcesses lists, as "PID (comm)", the live processes other than this
// one that are not kernel threads. On a machine kill(-1, 0) cannot tell
// whether any are left: it succeeds on kernel threads, which are always there
// (and ignore the signal). Zombies are left out: they hold nothing, and
// PID 1's own are reaped by the caller.
func userProcesses() []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// PID (comm) state ppid pgrp session tty_nr tpgid flags ...; comm may hold spaces.
		s := string(b)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		f := strings.Fields(s[rp+1:])
		if len(f) < 7 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if flags, err := strconv.ParseUint(f[6], 10, 64); err != nil || flags&pfKthread != 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%d (%s)", pid, s[lp+1:rp]))
	}
	return out
}

// unmountAll unmounts everything but / in reverse mount order; what is busy
// is remounted read-only; / is remounted read-only last.
func unmountAll(logf func(string, ...any)) {
	mounts := mountinfo.Read()
	targets := make([]string, 0, len(mounts))
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].Target != "/" {
			targets = append(targets, mounts[i].Target)
		}
	}
	// Children before parents even where mount order says otherwise.
	sort.SliceStable(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
	for _, t := range targets {
		if err := unix.Unmount(t, 0); err != nil {
			if err := unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil && err != unix.EINVAL {
				logf("shutdown: %s busy and not remounted read-only: %v", t, err)
			}
		}
	}
	// EBUSY means a file on / is still open for writing. The last ones (the
	// partitions' console logs) are closed by goroutines that may trail the
	// end of their partition by a moment: try for a while before giving up
	// and leaving / to the journal.
	var err error
	for i := 0; i < 20; i++ {
		if err = unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != unix.EBUSY {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		logf("shutdown: remount / read-only: %v", err)
	}
}
