package machine

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/internal/pid1"
	"github.com/metainit/metainit/partition"
)

// Version is set by main (from the build).
var Version = "dev"

// handle serves one control request. Every verb that names a partition
// answers one clear line for a name that does not exist; nothing changes.
func (m *Machine) handle(sess *control.Session, req *control.Request) *control.Response {
	if m.opts.debug {
		m.log.Printf("control: %s %s", req.Verb, req.Name)
	}
	ok := func(msg string) *control.Response { return &control.Response{OK: true, Message: msg} }
	part := func() (*partition.Partition, error) {
		if req.Name == "" {
			return nil, errors.New(req.Verb + ": which partition?")
		}
		return m.set.Get(req.Name)
	}
	if req.Verb == "debug-panic" && faultsEnabled() {
		panic("injected by debug-panic (METAINIT_TEST_FAULTS)")
	}
	switch req.Verb {
	case "list":
		var st []partition.Status
		for _, p := range m.set.All() {
			st = append(st, withUsage(p))
		}
		return &control.Response{OK: true, Partitions: st}
	case "info":
		return &control.Response{OK: true, Info: m.info()}
	case "reload":
		report := m.Reload("metainit reload")
		if len(report) == 0 {
			return ok("nothing changed")
		}
		return ok(strings.Join(report, "\n"))
	case "reset-failed":
		if req.Name == "" {
			for _, p := range m.set.All() {
				p.ResetFailed()
			}
			return ok("failed states cleared")
		}
	case "poweroff", "reboot", "halt":
		e := map[string]pid1.Ending{"poweroff": pid1.Poweroff, "reboot": pid1.Reboot, "halt": pid1.Halt}[req.Verb]
		go m.Shutdown(e, "metainit "+req.Verb)
		return ok(req.Verb + " under way")
	}

	p, err := part()
	if err != nil {
		return control.Fail(err)
	}
	switch req.Verb {
	case "status":
		return &control.Response{OK: true, Partitions: []partition.Status{withUsage(p)},
			Lines: p.Console().Lines(10, time.Time{})}
	case "start":
		p.ResetFailed()
		err = p.Start()
	case "stop":
		err = p.Stop(partition.ActionPoweroff)
	case "restart":
		if err = p.Stop(partition.ActionPoweroff); err == nil {
			err = p.Start()
		}
	case "reset-failed":
		p.ResetFailed()
	case "logs":
		return m.logs(sess, req, p)
	case "console":
		if err := sess.Begin(); err != nil {
			return control.Fail(err)
		}
		if err := p.Attach(sess.Ctx, terminal(sess, req)); err != nil {
			return control.Fail(err)
		}
		return ok("detached")
	case "exec":
		return m.exec(sess, req, p)
	default:
		return control.Fail(fmt.Errorf("unknown verb %q", req.Verb))
	}
	if err != nil {
		return control.Fail(err)
	}
	return ok(fmt.Sprintf("%s: %s", p, p.Status().State))
}

func withUsage(p *partition.Partition) partition.Status {
	s := p.Status()
	if u, ok := p.Usage(); ok {
		s.Usage = &u
	}
	return s
}

func (m *Machine) exec(sess *control.Session, req *control.Request, p *partition.Partition) *control.Response {
	o := partition.ExecOptions{Args: req.Args, Env: req.Env, Cwd: req.Cwd}
	if req.Tty {
		if err := sess.Begin(); err != nil {
			return control.Fail(err)
		}
		code, err := p.ExecTTY(sess.Ctx, o, req.Rows, req.Cols, terminal(sess, req))
		if err != nil {
			return control.Fail(err)
		}
		return &control.Response{OK: true, ExitCode: code}
	}
	if len(sess.Files) != 3 {
		return control.Fail(errors.New("exec: the client must attach stdin, stdout and stderr"))
	}
	o.Stdin, o.Stdout, o.Stderr = sess.Files[0], sess.Files[1], sess.Files[2]
	code, err := p.Exec(sess.Ctx, o)
	if err != nil {
		return control.Fail(err)
	}
	return &control.Response{OK: true, ExitCode: code}
}

func (m *Machine) logs(sess *control.Session, req *control.Request, p *partition.Partition) *control.Response {
	lines := p.Console().Lines(req.Lines, req.Since)
	if !req.Follow {
		return &control.Response{OK: true, Lines: lines}
	}
	// Subscribe before sending the backlog, so no line falls in between.
	ch := p.Console().Subscribe()
	defer p.Console().Unsubscribe(ch)
	if err := sess.Begin(); err != nil {
		return control.Fail(err)
	}
	for _, l := range lines {
		if sess.Send(control.PacketOutput, []byte(l.Text+"\n")) != nil {
			return control.Fail(errors.New("client gone"))
		}
	}
	for {
		select {
		case <-sess.Ctx.Done():
			return &control.Response{OK: true}
		case b, ok := <-ch:
			if !ok {
				return control.Fail(errors.New("logs: reader too slow, dropped"))
			}
			if sess.Send(control.PacketOutput, b) != nil {
				return &control.Response{OK: true}
			}
		}
	}
}

// terminal turns the session's packets into a partition.Terminal. The
// goroutine ends when the client hangs up (sess.In closes).
func terminal(sess *control.Session, req *control.Request) partition.Terminal {
	input := make(chan []byte, 16)
	resize := make(chan [2]uint16, 4)
	if req.Rows > 0 && req.Cols > 0 {
		resize <- [2]uint16{req.Rows, req.Cols}
	}
	go func() {
		defer close(input)
		for pkt := range sess.In {
			if len(pkt) == 0 {
				continue
			}
			switch pkt[0] {
			case control.PacketInput:
				select {
				case input <- pkt[1:]:
				case <-sess.Ctx.Done():
					return
				}
			case control.PacketResize:
				if r, c, ok := control.ParseResize(pkt[1:]); ok {
					select {
					case resize <- [2]uint16{r, c}:
					default:
					}
				}
			}
		}
	}()
	return partition.Terminal{Input: input, Resize: resize, Output: streamWriter{sess}}
}

type streamWriter struct{ s *control.Session }

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w.s.Send(control.PacketOutput, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// info reports PID 1's own figures.
func (m *Machine) info() *control.Info {
	fds, _ := os.ReadDir("/proc/self/fd")
	return &control.Info{
		Pid:        os.Getpid(),
		Version:    Version,
		Goroutines: runtime.NumGoroutine(),
		FDs:        len(fds),
		RSSKiB:     rssKiB(),
		Reaped:     m.reaper.Reaped(),
		Nested:     m.cfg.Nested,
		Uptime:     time.Since(m.started).Round(time.Millisecond).String(),
	}
}

func rssKiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var n int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n
		}
	}
	return 0
}

// faultsEnabled turns on fault injection for tests: the verb debug-panic
// panics inside a control handler, to prove the recovery. It is read from
// PID 1's environment, which only whoever starts PID 1 controls.
func faultsEnabled() bool { return os.Getenv("METAINIT_TEST_FAULTS") == "1" }
