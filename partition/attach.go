package partition

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
)

// Terminal is an operator's terminal as seen through the control socket:
// what they type, their window size, and where output goes.
type Terminal struct {
	Input  <-chan []byte    // closed when the operator goes away
	Resize <-chan [2]uint16 // rows, cols
	Output io.Writer
}

// Console returns the partition's console (its log, and what attaches to it).
func (p *Partition) Console() *Console { return p.console }

// master returns the current pty master, or nil when the init is not running.
func (p *Partition) master() *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inst == nil {
		return nil
	}
	return p.inst.console
}

// Attach joins an operator's terminal to the partition's /dev/console until
// ctx ends or their input closes: they see everything it prints (as does
// every other attached operator) and what they type goes to it. Attaching
// and detaching never disturb the partition; an attachment outlives a
// restart of the init.
func (p *Partition) Attach(ctx context.Context, t Terminal) error {
	if p.master() == nil {
		return fmt.Errorf("%s: console: partition is not running", p)
	}
	out := p.console.Subscribe()
	defer p.console.Unsubscribe(out)
	// Repaint: the last lines, so a prompt already printed is seen.
	for _, l := range p.console.Lines(10, time.Time{}) {
		if _, err := io.WriteString(t.Output, l.Text+"\r\n"); err != nil {
			return nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-out:
			if !ok {
				return fmt.Errorf("%s: console: output dropped (terminal too slow)", p)
			}
			if _, err := t.Output.Write(b); err != nil {
				return nil
			}
		case b, ok := <-t.Input:
			if !ok {
				return nil
			}
			if m := p.master(); m != nil {
				_, _ = m.Write(b)
			}
		case sz := <-t.Resize:
			if m := p.master(); m != nil {
				setWinsize(m, sz[0], sz[1])
			}
		}
	}
}

func setWinsize(f *os.File, rows, cols uint16) {
	raw, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	})
}

// ExecTTY runs a command inside the partition on a new pty of the
// partition's own devpts (so job control and full-screen programs work), and
// joins it to the operator's terminal until the command exits. It returns the
// command's exit code. When the operator goes away the command is killed.
func (p *Partition) ExecTTY(ctx context.Context, o ExecOptions, rows, cols uint16, t Terminal) (int, error) {
	inst, proc, err := p.execProcess(o)
	if err != nil {
		return 0, err
	}
	parent, child, err := utils.NewSockPair("exec-console")
	if err != nil {
		return 0, err
	}
	defer parent.Close()
	proc.ConsoleSocket = child
	proc.ConsoleWidth, proc.ConsoleHeight = cols, rows
	pid, err := p.runExec(inst, proc)
	child.Close()
	if err != nil {
		return 0, err
	}
	defer p.opts.Owner.Release(pid)

	received, err := utils.RecvFile(parent)
	if err != nil {
		_ = proc.Signal(unix.SIGKILL)
		_, _ = proc.Wait()
		return 0, fmt.Errorf("%s: exec: no pty: %w", p, err)
	}
	master, peer, err := holdConsole(received)
	if err != nil {
		_ = proc.Signal(unix.SIGKILL)
		_, _ = proc.Wait()
		return 0, fmt.Errorf("%s: exec: %w", p, err)
	}
	defer master.Close()

	waited := make(chan *os.ProcessState, 1)
	go func() {
		defer recoverLog(p.logf, "exec -t wait")
		ps, _ := proc.Wait()
		// The command and everything it left on the pty are gone: let the
		// output copy see end-of-file once it has drained.
		peer.Close()
		waited <- ps
	}()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(t.Output, master)
	}()
	var ps *os.ProcessState
loop:
	for {
		select {
		case ps = <-waited:
			break loop
		case <-ctx.Done():
			_ = proc.Signal(unix.SIGKILL)
		case b, ok := <-t.Input:
			if !ok {
				t.Input = nil
				_ = proc.Signal(unix.SIGKILL)
				continue
			}
			_, _ = master.Write(b)
		case sz := <-t.Resize:
			setWinsize(master, sz[0], sz[1])
		}
	}
	select {
	case <-copied:
	case <-time.After(2 * time.Second): // a background job holds the pty open
		master.Close()
		<-copied
	}
	return exitCode(ps), nil
}

// execProcess prepares a libcontainer process for o in the running init's
// namespaces.
func (p *Partition) execProcess(o ExecOptions) (*instance, *libcontainer.Process, error) {
	if len(o.Args) == 0 {
		return nil, nil, fmt.Errorf("%s: exec: no command given", p)
	}
	// The same rule as process.cwd: no working directory under /proc.
	if err := checkCwd(o.Cwd); err != nil {
		return nil, nil, fmt.Errorf("%s: exec: cwd: %w", p, err)
	}
	p.mu.Lock()
	inst, state := p.inst, p.state
	p.mu.Unlock()
	if inst == nil || (state != StateRunning && state != StateReady) {
		return nil, nil, fmt.Errorf("%s: exec: partition is %s, not running", p, state)
	}
	return inst, newExecProcess(inst, o), nil
}

// runExec starts proc and claims its PID from the reaper.
func (p *Partition) runExec(inst *instance, proc *libcontainer.Process) (int, error) {
	done := p.opts.Owner.Spawning()
	if err := inst.c.Run(proc); err != nil {
		done()
		return 0, fmt.Errorf("%s: exec %s: %w", p, proc.Args[0], err)
	}
	pid, _ := proc.Pid()
	done(pid)
	return pid, nil
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return 255
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
