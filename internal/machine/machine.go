// Package machine is metainit as PID 1: it boots the partitions, serves the
// control socket, turns signals into actions, and owns the single shutdown
// path. Boot never returns.
package machine

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/internal/pid1"
	"github.com/metainit/metainit/partition"
	"golang.org/x/sys/unix"
)

// Config says where an instance finds and keeps things.
type Config struct {
	Nested        bool   // PID 1 of namespaces on a running machine, not of the machine
	PartitionsDir string // default /etc/metainit/partitions
	RunDir        string // default /run/metainit: control.sock, libcontainer state
	LogDir        string // default /var/log/metainit (nested: <RunDir>/log)
	CgroupParent  string // default "metainit"
	Cmdline       string // nested: metainit.* options (a machine reads /proc/cmdline)
	Root          string // nested: the instance's root filesystem (default: the host's /)
}

// Machine is one running instance.
type Machine struct {
	cfg    Config
	log    *pid1.Log
	reaper *pid1.Reaper
	set    *partition.Set
	ctl    *control.Server

	opts    cmdline
	rescue  *pid1.Rescue
	started time.Time

	mu           sync.Mutex
	ending       pid1.Ending // how the machine ends, once shuttingDown
	shuttingDown bool
}

func (m *Machine) String() string {
	if m.cfg.Nested {
		return "metainit (nested, " + m.cfg.RunDir + ")"
	}
	return "metainit (PID 1)"
}

// Boot runs PID 1. sigs must come from pid1.CatchSignals, called first thing
// in main. It never returns.
func Boot(cfg Config, sigs <-chan os.Signal) {
	log := pid1.NewLog()
	m := &Machine{cfg: cfg, log: log, reaper: pid1.NewReaper(), started: time.Now()}
	defer func() {
		// A panic here would end PID 1. Log it and keep the machine as it is:
		// the signal loop below is the last thing that may not fail.
		if r := recover(); r != nil {
			log.Printf("PANIC during boot (recovered): %v", r)
			m.loop(sigs)
		}
	}()
	m.setup()
	go m.startPartitions()
	m.loop(sigs)
}

// setup does what must be done before any partition starts.
func (m *Machine) setup() {
	cfg := &m.cfg
	if cfg.Nested {
		if err := pid1.EnterNested(cfg.Root); err != nil {
			m.log.Printf("nested setup: %v", err)
		}
	} else {
		if err := pid1.DisableCtrlAltDel(); err != nil {
			m.log.Printf("Ctrl-Alt-Del stays the kernel's: %v", err)
		}
		if err := pid1.MountMachine(m.log.Printf); err != nil {
			m.log.Printf("mounts: %v", err)
		}
		m.log.UseKmsg()
		if name, err := pid1.SetHostname(); err != nil {
			m.log.Printf("hostname: %v", err)
		} else if name != "" {
			m.log.Printf("hostname %s", name)
		}
	}
	if err := pid1.ProtectFromOOM(); err != nil {
		m.log.Printf("oom_score_adj: %v", err)
	}
	if !cfg.Nested {
		cfg.Cmdline = kernelCmdline()
	}
	m.opts = parseCmdline(cfg.Cmdline, m.log.Printf)
	if m.opts.partitionsDir != "" {
		cfg.PartitionsDir = m.opts.partitionsDir
	}
	for _, d := range []string{cfg.RunDir, cfg.LogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			m.log.Printf("%s: %v", d, err)
		}
	}
	if err := m.log.AddFile(filepath.Join(cfg.LogDir, "metainit.log")); err != nil {
		m.log.Printf("log file: %v", err)
	}
	m.log.Printf("%s starting, pid %d, partitions from %s", m, os.Getpid(), cfg.PartitionsDir)
	if m.opts.debug {
		m.log.Printf("command line options: %s", m.opts)
	}

	// The socket exists from here on; clients wait in its backlog until the
	// partitions are loaded and it is served (handlers read m.set).
	ctl, err := control.Listen(filepath.Join(cfg.RunDir, "control.sock"), m.handle, m.log.Printf)
	if err != nil {
		m.log.Printf("%v", err)
	}
	opts := &partition.Options{
		RunDir:       cfg.RunDir,
		LogDir:       cfg.LogDir,
		CgroupParent: cfg.CgroupParent,
		Owner:        m.reaper,
		Logf:         m.log.Printf,
		Announce:     m.log.Status,
		Machine:      m.partitionRequest,
	}
	set, err := partition.LoadSet(cfg.PartitionsDir, opts)
	if err != nil {
		m.log.Printf("%v", err)
	}
	m.set = set
	if ctl != nil {
		m.ctl = ctl
		go ctl.Serve()
	}
}

func (m *Machine) startPartitions() {
	defer m.recover("start partitions")
	if m.opts.rescue {
		m.log.Printf("metainit.rescue: rescue shell requested on the command line")
		m.startRescue()
	}
	begin := time.Now()
	all := m.set.All()
	n := m.set.StartAll(m.opts.sel)
	m.log.Printf("started %d of %d partitions in %.3fs", n, len(all), time.Since(begin).Seconds())
	if n == 0 {
		m.log.Printf("NO PARTITION STARTED: metainit stays up; the control socket answers (metainit list)")
		m.startRescue()
	}
}

// startRescue starts the rescue shell on the console, once.
func (m *Machine) startRescue() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rescue != nil || m.shuttingDown {
		return
	}
	in, out := os.Stdin, os.Stdout
	if !m.cfg.Nested {
		if c, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
			in, out = c, c
		}
	}
	m.rescue = &pid1.Rescue{Shell: "/bin/sh", In: in, Out: out, Reaper: m.reaper, Logf: m.log.Printf}
	go m.rescue.Run()
}

// Reload rescans the partitions directory.
func (m *Machine) Reload(why string) []string {
	m.log.Printf("reload (%s)", why)
	report := m.set.Reload(m.opts.sel)
	for _, r := range report {
		m.log.Printf("reload: %s", r)
	}
	if len(report) == 0 {
		m.log.Printf("reload: nothing changed")
	}
	return report
}

// loop is PID 1's main loop: signals in, actions out. It must never block for
// long, so every action runs in its own goroutine.
func (m *Machine) loop(sigs <-chan os.Signal) {
	for s := range sigs {
		m.onSignal(s.(syscall.Signal))
	}
}

// onSignal maps metainit's own signals (documented in README.md):
//
//	SIGCHLD            reap orphans
//	SIGINT, SIGTERM    reboot (SIGINT is Ctrl-Alt-Del on a machine)
//	SIGUSR2, SIGPWR    poweroff
//	SIGUSR1            halt
//	SIGHUP             reload: rescan the partitions directory
//	anything else      logged and ignored
func (m *Machine) onSignal(s syscall.Signal) {
	switch s {
	case unix.SIGCHLD:
		m.reaper.Reap()
	case unix.SIGINT, unix.SIGTERM:
		go m.Shutdown(pid1.Reboot, "signal "+s.String())
	case unix.SIGUSR2, unix.SIGPWR:
		go m.Shutdown(pid1.Poweroff, "signal "+s.String())
	case unix.SIGUSR1:
		go m.Shutdown(pid1.Halt, "signal "+s.String())
	case unix.SIGHUP:
		go func() {
			defer m.recover("reload")
			m.Reload("SIGHUP")
		}()
	case unix.SIGWINCH, unix.SIGPIPE:
		// Nothing to do; PIPE errors are seen at the write that caused them.
	default:
		m.log.Printf("signal %s ignored", s)
	}
}

// Shutdown is the one way the machine ends, whatever asked for it. A second
// request while one runs can upgrade a halt to a poweroff and is otherwise
// ignored; it never restarts the sequence.
func (m *Machine) Shutdown(e pid1.Ending, why string) {
	defer m.recover("shutdown")
	m.mu.Lock()
	if m.shuttingDown {
		if m.ending == pid1.Halt && e == pid1.Poweroff {
			m.ending = pid1.Poweroff
			m.log.Printf("shutdown: upgraded to poweroff (%s)", why)
		} else {
			m.log.Printf("shutdown: %s already under way; %s (%s) ignored", m.ending, e, why)
		}
		m.mu.Unlock()
		return
	}
	m.ending, m.shuttingDown = e, true
	rescue := m.rescue
	m.mu.Unlock()

	begin := time.Now()
	m.log.Printf("shutdown: %s requested by %s", e, why)
	a := map[pid1.Ending]partition.Action{
		pid1.Poweroff: partition.ActionPoweroff, pid1.Reboot: partition.ActionReboot, pid1.Halt: partition.ActionHalt,
	}[e]
	if rescue != nil {
		rescue.Stop()
	}
	m.set.ShutdownAll(a)
	m.log.Printf("shutdown: partitions stopped in %.3fs", time.Since(begin).Seconds())
	if m.ctl != nil {
		m.ctl.Close()
	}
	if m.cfg.Nested {
		pid1.RemoveCgroupTree(m.cfg.CgroupParent, m.log.Printf)
	}
	m.mu.Lock()
	final := m.ending
	m.mu.Unlock()
	pid1.Finish(final, !m.cfg.Nested, m.reaper, m.log)
}

// partitionRequest is a partition's init asking for the whole machine to
// power off or reboot (annotations on-poweroff / on-reboot).
func (m *Machine) partitionRequest(p *partition.Partition, a partition.Action) {
	e := map[partition.Action]pid1.Ending{
		partition.ActionPoweroff: pid1.Poweroff, partition.ActionReboot: pid1.Reboot, partition.ActionHalt: pid1.Halt,
	}[a]
	m.Shutdown(e, p.String())
}

func (m *Machine) recover(where string) {
	if r := recover(); r != nil {
		m.log.Printf("PANIC in %s (recovered): %v", where, r)
	}
}
