package partition

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ExecOptions describe a command to run inside a running partition.
type ExecOptions struct {
	Args                  []string
	Env                   []string // added to a default PATH, TERM and container=
	Cwd                   string
	Stdin, Stdout, Stderr *os.File // the caller's own files, passed over the control socket
}

// Exec runs a command in the partition's namespaces and cgroup, like
// nsenter or runc exec, and returns its exit code (128+N when killed by
// signal N). Cancelling ctx (the caller went away) kills the command.
func (p *Partition) Exec(ctx context.Context, o ExecOptions) (int, error) {
	if len(o.Args) == 0 {
		return 0, fmt.Errorf("%s: exec: no command given", p)
	}
	p.mu.Lock()
	inst := p.inst
	state := p.state
	p.mu.Unlock()
	if inst == nil || (state != StateRunning && state != StateReady) {
		return 0, fmt.Errorf("%s: exec: partition is %s, not running", p, state)
	}
	sp := inst.bundle.Spec.Process
	env := mergeEnv([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"TERM=" + envOr(os.Getenv("TERM"), "xterm"), "container=metainit",
	}, o.Env)
	proc := &libcontainer.Process{
		Args: o.Args, Env: env, Cwd: o.Cwd,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		UID: int(sp.User.UID), GID: int(sp.User.GID),
		Init: false,
	}
	if proc.Cwd == "" {
		proc.Cwd = "/"
	}
	if o.Stdin == nil {
		proc.Stdin = nil
	}
	if c := sp.Capabilities; c != nil {
		caps := *c
		dropUnheldCaps(&caps, func(string, ...any) {})
		if lp, err := newProcess(&specs.Process{Capabilities: &caps}); err == nil {
			proc.Capabilities = lp.Capabilities
		}
	}
	done := p.opts.Owner.Spawning()
	if err := inst.c.Run(proc); err != nil {
		done()
		return 0, fmt.Errorf("%s: exec %s: %w", p, o.Args[0], err)
	}
	pid, _ := proc.Pid()
	done(pid)
	defer p.opts.Owner.Release(pid)

	waited := make(chan *os.ProcessState, 1)
	go func() {
		defer recoverLog(p.logf, "exec wait")
		ps, _ := proc.Wait()
		waited <- ps
	}()
	var ps *os.ProcessState
	select {
	case ps = <-waited:
	case <-ctx.Done():
		_ = proc.Signal(unix.SIGKILL)
		ps = <-waited
	}
	if ps == nil {
		return 0, fmt.Errorf("%s: exec %s: lost its exit status", p, o.Args[0])
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

func envOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
