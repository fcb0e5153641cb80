package pid1

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Rescue is the way in when nothing else is: a shell from the machine's own
// root on the console. It is started again whenever it exits, so exiting it
// never ends PID 1, until Stop.
type Rescue struct {
	Shell   string   // /bin/sh
	In, Out *os.File // the console: /dev/console on a machine, PID 1's stdio nested
	Reaper  *Reaper
	Logf    func(string, ...any)

	mu      sync.Mutex
	stopped bool
	cmd     *exec.Cmd
}

func (r *Rescue) String() string { return "rescue shell " + r.Shell }

// Run keeps a shell running on the console until Stop. Call it in its own
// goroutine.
func (r *Rescue) Run() {
	defer func() {
		if p := recover(); p != nil {
			r.Logf("PANIC in rescue shell (recovered): %v", p)
		}
	}()
	delay := time.Second
	for {
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return
		}
		cmd := exec.Command(r.Shell, "-i")
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=/root", "TERM=linux", "PS1=metainit-rescue# "}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = r.In, r.Out, r.Out
		// Its own session, with the console as controlling terminal when it is one.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: isTerminal(r.In), Ctty: 0}
		done := r.Reaper.Spawning()
		err := cmd.Start()
		if err != nil {
			done()
			r.mu.Unlock()
			r.Logf("%s: %v; trying again in 5s", r, err)
			time.Sleep(5 * time.Second)
			continue
		}
		done(cmd.Process.Pid)
		r.cmd = cmd
		r.mu.Unlock()
		r.Logf("%s started on the console (pid %d); the control socket still answers", r, cmd.Process.Pid)
		began := time.Now()
		err = cmd.Wait()
		r.Reaper.Release(cmd.Process.Pid)
		// A console that gives end-of-file at once (no terminal) must not
		// make a busy loop: quick exits back off, up to a minute.
		if time.Since(began) < 5*time.Second {
			delay = min(2*delay, time.Minute)
		} else {
			delay = time.Second
		}
		r.Logf("%s exited (%v); starting a new one in %s", r, err, delay)
		time.Sleep(delay)
	}
}

// Stop ends the shell for good (the machine is shutting down).
func (r *Rescue) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
