package partition

import (
	"context"
	"fmt"
	"os"

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
// nsenter or runc exec, with the caller's own stdio, and returns its exit code
// (128+N when killed by signal N). Cancelling ctx (the caller went away)
// kills the command.
func (p *Partition) Exec(ctx context.Context, o ExecOptions) (int, error) {
	inst, proc, err := p.execProcess(o)
	if err != nil {
		return 0, err
	}
	proc.Stdin, proc.Stdout, proc.Stderr = o.Stdin, o.Stdout, o.Stderr
	if o.Stdin == nil {
		proc.Stdin = nil
	}
	pid, err := p.runExec(inst, proc)
	if err != nil {
		return 0, err
	}
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
	return exitCode(ps), nil
}

// newExecProcess is the process for o with the init's user and capabilities.
func newExecProcess(inst *instance, o ExecOptions) *libcontainer.Process {
	sp := inst.bundle.Spec.Process
	env := mergeEnv([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"TERM=" + envOr(os.Getenv("TERM"), "xterm"), "container=metainit",
	}, o.Env)
	proc := &libcontainer.Process{
		Args: o.Args, Env: env, Cwd: o.Cwd,
		UID: int(sp.User.UID), GID: int(sp.User.GID),
		Init: false,
	}
	if proc.Cwd == "" {
		proc.Cwd = "/"
	}
	if c := sp.Capabilities; c != nil {
		caps := *c
		dropUnheldCaps(&caps, func(string, ...any) {})
		if lp, err := newProcess(&specs.Process{Capabilities: &caps}); err == nil {
			proc.Capabilities = lp.Capabilities
		}
	}
	return proc
}

func envOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
