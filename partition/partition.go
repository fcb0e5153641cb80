// Package partition runs one init system as PID 1 of its own namespaces, built
// from an OCI bundle, and speaks that init's language to stop, power off or
// reboot it. It is the only package of metainit that imports libcontainer.
package partition

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
)

// State is where a partition is in its life.
type State string

const (
	StateStarting State = "starting" // being created, or waiting to be restarted
	StateRunning  State = "running"  // the init runs its own code, not yet ready
	StateReady    State = "ready"    // the init said so (systemd) or was seen to be (others)
	StateStopping State = "stopping" // asked to stop, by its own protocol
	StateStopped  State = "stopped"
	StateFailed   State = "failed" // could not start, or crashed too often
)

// ChildOwner is the PID 1 reaper as a partition sees it. Starting a process
// happens inside Spawning (the reaper keeps off libcontainer's intermediate
// children meanwhile) and ends with the PIDs this package will wait for
// itself; Release gives a PID back once waited for.
type ChildOwner interface {
	Spawning() (done func(owned ...int))
	Release(pid int)
}

// Options are shared by all partitions of one metainit instance.
type Options struct {
	RunDir       string // libcontainer state and per-partition sockets live here
	LogDir       string // <name>.log: everything the partition's console prints
	CgroupParent string // all partitions' cgroups go below /<CgroupParent>/
	Owner        ChildOwner
	Logf         func(format string, args ...any)
	// Announce prints a status line on the machine's console, as systemd does
	// ("[  OK  ] Started …", "[FAILED] …"). May be nil.
	Announce func(ok bool, format string, args ...any)
	// Machine receives what a partition's init asks of the whole machine, when
	// its annotations say so (on-poweroff=poweroff-machine, on-reboot=reboot-machine).
	Machine func(p *Partition, a Action)
}

// Restart backoff: the delay doubles from restartDelayMin (or the
// org.metainit.restart-delay annotation) up to
// restartDelayMax; more than crashLimit crashes within crashWindow is a crash
// loop and the partition is marked failed.
const (
	restartDelayMin = time.Second
	restartDelayMax = time.Minute
	crashLimit      = 5
	crashWindow     = 2 * time.Minute
)

// A Partition is one init system and everything metainit knows of it.
type Partition struct {
	name string
	opts *Options

	// op serializes Start and Stop: one lifecycle operation at a time.
	op sync.Mutex

	console *Console // survives restarts

	mu           sync.Mutex // guards everything below
	bundle       *Bundle
	loadErr      error
	state        State
	errMsg       string
	inst         *instance
	restarts     int
	lastExit     string
	crashes      []time.Time
	backoff      time.Duration
	restartTimer *time.Timer
	final        bool // the machine is shutting down: never start again
}

// instance is one run of the partition's init.
type instance struct {
	name    string
	bundle  *Bundle
	c       *libcontainer.Container
	proc    *libcontainer.Process
	pid     int
	started time.Time
	notify  *notifyListener
	console *os.File // pty master of the partition's /dev/console
	// consolePeer is metainit's own fd on the pty's slave side.
	consolePeer *os.File
	undoRoot    func()            // root.path "/": unbinds the machine's root view
	undoHost    func()            // unmounts the tmpfs seen at /run/host
	cgroupPaths map[string]string // controller (v1) or "" (v2) → cgroup dir
	ready       chan struct{}     // closed when ready
	done        chan struct{}     // closed when the init has exited and been cleaned up

	// Guarded by Partition.mu.
	readyIn    time.Duration
	status     string  // last STATUS= from sd_notify
	stopAction *Action // set when metainit asked the init to stop
	killedMsg  string
}

func (i *instance) String() string                { return fmt.Sprintf("partition %s (init pid %d)", i.name, i.pid) }
func (i *instance) HostPID() int                  { return i.pid }
func (i *instance) Signal(s syscall.Signal) error { return i.c.Signal(s) }

// New makes a partition from a bundle directory. A bundle that does not load
// still makes a partition, in state failed, so that list shows why.
func New(dir string, opts *Options) *Partition {
	name := filepath.Base(dir)
	p := &Partition{name: name, opts: opts, state: StateStopped, console: newConsole(name, opts.LogDir)}
	p.Reload(dir)
	return p
}

// Reload reads the bundle again; it takes effect at the next start. It
// reports whether config.json changed.
func (p *Partition) Reload(dir string) (changed bool) {
	b, err := LoadBundle(dir)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.bundle, p.loadErr = nil, err
		if p.inst == nil {
			p.state, p.errMsg = StateFailed, err.Error()
		}
		return true
	}
	changed = p.bundle == nil || !sameSpec(p.bundle, b)
	p.bundle, p.loadErr = b, nil
	if p.state == StateFailed && p.inst == nil {
		p.state, p.errMsg = StateStopped, ""
	}
	return changed
}

func (p *Partition) String() string { return "partition " + p.name }

// Name is the partition's name: its directory's name.
func (p *Partition) Name() string { return p.name }

// Bundle returns the last loaded bundle, or nil and the error that kept it
// from loading.
func (p *Partition) Bundle() (*Bundle, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bundle, p.loadErr
}

func (p *Partition) logf(format string, args ...any) {
	p.opts.Logf("partition %s: "+format, append([]any{p.name}, args...)...)
}

func (p *Partition) announce(ok bool, format string, args ...any) {
	if p.opts.Announce != nil {
		p.opts.Announce(ok, format, args...)
	}
}

// Start starts the init. It returns once the init runs its own code (it does
// not wait for readiness; see WaitReady).
func (p *Partition) Start() error {
	p.op.Lock()
	defer p.op.Unlock()

	p.mu.Lock()
	if p.final {
		p.mu.Unlock()
		return fmt.Errorf("%s: start: the machine is shutting down", p)
	}
	if p.inst != nil {
		st := p.state
		p.mu.Unlock()
		return fmt.Errorf("%s: start: already %s", p, st)
	}
	if p.restartTimer != nil {
		p.restartTimer.Stop()
		p.restartTimer = nil
	}
	b, loadErr := p.bundle, p.loadErr
	if b == nil {
		p.state, p.errMsg = StateFailed, loadErr.Error()
		p.mu.Unlock()
		return loadErr
	}
	p.state, p.errMsg = StateStarting, ""
	p.mu.Unlock()

	inst, err := p.launch(b)

	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		err = fmt.Errorf("%s: start: %w", p, err)
		p.state, p.errMsg = StateFailed, err.Error()
		p.announce(false, "Failed to start %s: %v", p, err)
		return err
	}
	p.inst = inst
	p.state = StateRunning
	go p.supervise(inst)
	go p.watchReady(inst)
	return nil
}

// startMu serializes libcontainer's start of an init. Its cgroup v1 code fills
// package variables lazily while applying a container's resources
// (opencontainers/cgroups fs/blkio.go, detectWeightFilenames) without a lock,
// so two partitions starting at once race there (found by the -race run of
// the integration tests). The inits still boot concurrently; only the ~15 ms
// each of creating them is taken in turn.
var startMu sync.Mutex

// launch creates the container and runs the init in it.
func (p *Partition) launch(b *Bundle) (inst *instance, retErr error) {
	hostDir := filepath.Join(p.opts.RunDir, "partitions", p.name, "host")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.opts.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	inst = &instance{name: p.name, bundle: b, ready: make(chan struct{}), done: make(chan struct{})}
	var cleanups []func()
	defer func() {
		if retErr != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()
	undoHost, err := mountHostDir(hostDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", hostMount, err)
	}
	inst.undoHost = undoHost
	cleanups = append(cleanups, undoHost)

	env := []string{"container=metainit", "container_uuid=" + newUUID()}
	if !hasEnv(b.Spec.Process.Env, "TERM") {
		env = append(env, "TERM=vt220")
	}
	if b.Settings.Kind == KindSystemd {
		n, err := listenNotify(filepath.Join(hostDir, "notify"))
		if err != nil {
			return nil, fmt.Errorf("notify socket: %w", err)
		}
		inst.notify = n
		cleanups = append(cleanups, func() { n.Close() })
		env = append(env, "NOTIFY_SOCKET="+hostMount+"/notify")
	}

	rootfs := b.Rootfs
	if rootfs == "/" {
		dir := filepath.Join(p.opts.RunDir, "partitions", p.name, "hostroot")
		undo, err := bindHostRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("root.path /: %w", err)
		}
		inst.undoRoot = undo
		cleanups = append(cleanups, undo)
		rootfs = dir
	}
	config, proc, err := buildConfig(b, rootfs, launchSpec{
		id:       p.name,
		stateDir: filepath.Join(p.opts.RunDir, "containers"),
		cgroup:   "/" + p.opts.CgroupParent + "/" + p.name,
		hostDir:  hostDir,
		extraEnv: env,
		logf:     p.logf,
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := createContainer(launchSpec{id: p.name, stateDir: filepath.Join(p.opts.RunDir, "containers"), logf: p.logf}, config)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	inst.c = c
	cleanups = append(cleanups, func() { _ = c.Destroy() })

	var consoleCh chan *os.File
	if b.Spec.Process.Terminal {
		parent, child, err := utils.NewSockPair("console")
		if err != nil {
			return nil, err
		}
		defer child.Close()
		proc.ConsoleSocket = child
		consoleCh = make(chan *os.File, 1)
		go func() {
			defer parent.Close()
			master, err := utils.RecvFile(parent)
			if err != nil {
				master = nil
			}
			consoleCh <- master
		}()
	} else {
		// No terminal: the init's stdout and stderr are a pipe into the console log.
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer w.Close()
		cleanups = append(cleanups, func() { r.Close() })
		proc.Stdout, proc.Stderr = w, w
		go pump(r, p.console)
	}
	inst.proc = proc

	done := p.opts.Owner.Spawning()
	inst.started = time.Now()
	startMu.Lock()
	err = c.Run(proc)
	startMu.Unlock()
	if err != nil {
		done()
		return nil, fmt.Errorf("run %s: %w", b.Spec.Process.Args[0], err)
	}
	inst.pid, _ = proc.Pid()
	done(inst.pid)
	if st, err := c.State(); err == nil {
		// A copy: libcontainer's map changes under us when the container is destroyed.
		inst.cgroupPaths = maps.Clone(st.CgroupPaths)
	}

	if consoleCh != nil {
		select {
		case received := <-consoleCh:
			if received != nil {
				master, peer, err := holdConsole(received)
				if err != nil {
					p.logf("console: %v", err)
				} else {
					inst.console, inst.consolePeer = master, peer
					go pump(master, p.console)
				}
			}
		case <-time.After(5 * time.Second):
			p.logf("no console received from libcontainer")
		}
	}
	if inst.notify != nil {
		go inst.notify.serve(func() { p.markReady(inst) }, func(s string) {
			p.mu.Lock()
			inst.status = s
			p.mu.Unlock()
		})
	}
	return inst, nil
}

func hasEnv(env []string, name string) bool {
	for _, e := range env {
		if len(e) > len(name) && e[:len(name)+1] == name+"=" {
			return true
		}
	}
	return false
}

func (p *Partition) markReady(inst *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-inst.ready:
		return
	default:
	}
	inst.readyIn = time.Since(inst.started)
	close(inst.ready)
	if p.inst == inst && p.state == StateRunning {
		p.state = StateReady
	}
	p.logf("ready in %.2fs", inst.readyIn.Seconds())
	p.announce(true, "Started %s (%s, ready in %.2fs)", p, inst.bundle.Settings.Kind, inst.readyIn.Seconds())
}

// supervise waits for the init to exit, cleans up after it and decides what
// comes next from how it ended.
func (p *Partition) supervise(inst *instance) {
	defer recoverLog(p.logf, "supervise")
	ps, _ := inst.proc.Wait() // an error only says the init was signalled
	p.opts.Owner.Release(inst.pid)
	var ws syscall.WaitStatus
	if ps != nil {
		ws, _ = ps.Sys().(syscall.WaitStatus)
	}
	exit := Exit{Status: ws}
	if err := inst.c.Destroy(); err != nil {
		p.logf("destroy: %v", err)
	}
	if inst.notify != nil {
		inst.notify.Close()
	}
	if inst.undoHost != nil {
		inst.undoHost()
	}
	if inst.consolePeer != nil {
		inst.consolePeer.Close()
	}
	if inst.console != nil {
		inst.console.Close()
	}
	if inst.undoRoot != nil {
		inst.undoRoot()
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	defer close(inst.done)
	p.inst = nil
	p.lastExit = exit.String()
	uptime := time.Since(inst.started).Round(time.Millisecond)
	p.logf("init exited after %s: %s", uptime, exit)

	b := inst.bundle
	switch {
	case inst.stopAction != nil:
		p.state, p.errMsg = StateStopped, inst.killedMsg
	case exit.Poweroff():
		p.state, p.errMsg = StateStopped, ""
		if b.Settings.PoweroffMachine && p.opts.Machine != nil {
			go p.opts.Machine(p, ActionPoweroff)
		}
	case exit.Reboot():
		if b.Settings.RebootMachine && p.opts.Machine != nil {
			p.state, p.errMsg = StateStopped, ""
			go p.opts.Machine(p, ActionReboot)
			return
		}
		p.state, p.errMsg = StateStarting, "rebooting"
		go p.startAgain()
	default:
		crashed := !exit.Clean()
		restart := b.Settings.Restart == RestartAlways || (crashed && b.Settings.Restart == RestartOnFailure)
		if !restart {
			if crashed {
				p.state, p.errMsg = StateFailed, "init "+exit.String()
			} else {
				p.state, p.errMsg = StateStopped, ""
			}
			return
		}
		p.scheduleRestart(exit, b.Settings.RestartDelay)
	}
}

// scheduleRestart restarts a crashed init after a growing delay, or marks the
// partition failed when it crashes in a loop. Called with p.mu held.
func (p *Partition) scheduleRestart(exit Exit, firstDelay time.Duration) {
	now := time.Now()
	recent := p.crashes[:0]
	for _, t := range p.crashes {
		if now.Sub(t) < crashWindow {
			recent = append(recent, t)
		}
	}
	p.crashes = append(recent, now)
	if len(p.crashes) > crashLimit {
		p.state = StateFailed
		p.errMsg = fmt.Sprintf("crash loop: %d crashes within %s, last: %s; run 'metainit start %s' or 'reset-failed' to try again",
			len(p.crashes), crashWindow, exit, p.name)
		p.logf("%s", p.errMsg)
		p.announce(false, "%s failed: %s", p, p.errMsg)
		p.crashes, p.backoff = nil, 0
		return
	}
	if len(p.crashes) == 1 {
		p.backoff = firstDelay
	} else {
		p.backoff = min(2*p.backoff, restartDelayMax)
	}
	p.state = StateStarting
	p.errMsg = fmt.Sprintf("restarting in %s after: %s", p.backoff, exit)
	p.logf("%s", p.errMsg)
	p.restartTimer = time.AfterFunc(p.backoff, p.startAgain)
}

func (p *Partition) startAgain() {
	defer recoverLog(p.logf, "restart")
	p.mu.Lock()
	p.restartTimer = nil
	if p.final || p.inst != nil {
		p.mu.Unlock()
		return
	}
	p.restarts++
	p.mu.Unlock()
	if err := p.Start(); err != nil {
		p.logf("%v", err)
	}
}

// Stop asks the init to do a (poweroff by default) through its own protocol,
// waits up to the stop timeout, then kills the partition. It returns when the
// init has exited. A stopped partition stays stopped until Start.
func (p *Partition) Stop(a Action) error {
	return p.stop(a, false)
}

// Shutdown stops the partition for good: the machine is going down.
func (p *Partition) Shutdown(a Action) error {
	return p.stop(a, true)
}

func (p *Partition) stop(a Action, final bool) error {
	p.mu.Lock()
	if final {
		p.final = true
	}
	if p.restartTimer != nil {
		p.restartTimer.Stop()
		p.restartTimer = nil
		if p.inst == nil {
			p.state, p.errMsg = StateStopped, "restart cancelled"
		}
	}
	p.mu.Unlock()

	p.op.Lock()
	defer p.op.Unlock()

	p.mu.Lock()
	inst := p.inst
	if inst == nil {
		p.mu.Unlock()
		return nil
	}
	if inst.stopAction == nil {
		inst.stopAction = &a
	}
	p.state = StateStopping
	settings := inst.bundle.Settings
	p.mu.Unlock()

	proto := ProtocolFor(settings.Kind, settings.StopSignal)
	begin := time.Now()
	p.logf("stopping (%s) via %s", a, proto)
	if killed, err := p.request(inst, proto, a, settings.StopTimeout); err != nil {
		p.logf("stop request failed, killing: %v", err)
		p.kill(inst, fmt.Sprintf("stop request failed (%v), killed", err))
	} else if !killed {
		p.logf("stopped by its own protocol in %.2fs", time.Since(begin).Seconds())
		p.announce(true, "Stopped %s (%.2fs)", p, time.Since(begin).Seconds())
		return nil
	}
	select {
	case <-inst.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: stop: init pid %d still not gone 10s after SIGKILL", p, inst.pid)
	}
}

// request asks the init to do a, by its protocol, and waits up to timeout
// for it to exit; then it kills the partition. The request is repeated
// (after 20ms, 40ms, 80ms, … up to every 2s) while the init lives: an init
// that has not yet installed its signal handlers (libcontainer's init stage,
// systemd or a shell trap a moment after start) never sees a signal sent
// then, since the kernel delivers to a PID namespace's init only the signals
// it handles. Every protocol here is idempotent.
func (p *Partition) request(inst *instance, proto Protocol, a Action, timeout time.Duration) (killed bool, err error) {
	deadline := time.After(timeout)
	again := 20 * time.Millisecond
	delivered := false
	for {
		// A repeat that fails is no news: the init is on its way out (its
		// /proc/PID/root vanishes as it exits). Only a first failure counts.
		if err := proto.Request(inst, a); err == nil {
			delivered = true
		} else if !delivered {
			select {
			case <-inst.done: // it went away meanwhile: the request was heard
				return false, nil
			default:
				return false, err
			}
		}
		select {
		case <-inst.done:
			return false, nil
		case <-time.After(again):
			again = min(2*again, 2*time.Second)
		case <-deadline:
			msg := fmt.Sprintf("stop timed out after %s, killed", timeout)
			p.logf("%s", msg)
			p.announce(false, "%s: %s", p, msg)
			p.kill(inst, msg)
			return true, nil
		}
	}
}

// kill ends the partition at once: SIGKILL to its init takes the whole PID
// namespace with it (the kernel kills every other process in it).
func (p *Partition) kill(inst *instance, msg string) {
	p.mu.Lock()
	inst.killedMsg = msg
	p.mu.Unlock()
	if err := inst.c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
		_ = unix.Kill(inst.pid, unix.SIGKILL)
	}
}

// WaitReady returns when the partition is ready, or an error when it stops,
// fails or does not become ready within its ready timeout.
func (p *Partition) WaitReady() error {
	p.mu.Lock()
	inst := p.inst
	var timeout time.Duration
	if p.bundle != nil {
		timeout = p.bundle.Settings.ReadyTimeout
	}
	p.mu.Unlock()
	if inst == nil {
		return fmt.Errorf("%s: not running", p)
	}
	select {
	case <-inst.ready:
		return nil
	case <-inst.done:
		return fmt.Errorf("%s: exited before it was ready", p)
	case <-time.After(timeout):
		return fmt.Errorf("%s: not ready after %s", p, timeout)
	}
}

func recoverLog(logf func(string, ...any), where string) {
	if r := recover(); r != nil {
		logf("PANIC in %s (recovered): %v", where, r)
	}
}

// Invalidate marks a partition that must not start (a dependency error found
// across partitions): it stays failed with err until its bundle is reloaded.
func (p *Partition) Invalidate(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bundle, p.loadErr = nil, err
	if p.inst == nil {
		p.state, p.errMsg = StateFailed, err.Error()
	}
}

// ResetFailed clears a failed state and the crash history, as systemctl
// reset-failed does; the partition is then stopped and may be started.
func (p *Partition) ResetFailed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.crashes, p.backoff = nil, 0
	if p.state == StateFailed && p.inst == nil && p.bundle != nil {
		p.state, p.errMsg = StateStopped, ""
	}
}

// AwaitReady waits until the partition is ready. It fails when the partition
// fails or stops, or after timeout.
func (p *Partition) AwaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st := p.Status()
		switch {
		case st.State == StateReady:
			return nil
		case st.State == StateFailed:
			return fmt.Errorf("%s failed: %s", p, st.Error)
		case time.Now().After(deadline):
			return fmt.Errorf("%s not ready after %s (%s)", p, timeout, st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
