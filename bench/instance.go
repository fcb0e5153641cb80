package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/partition"
	"github.com/metainit/metainit/specs"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// instance is one `metainit boot --nested`: metainit as PID 1 of fresh PID,
// mount and UTS namespaces, with its own partitions dir and control socket.
type instance struct {
	e      *env
	name   string
	dir    string
	sock   string
	cgroup string // the cgroup parent its partitions go below
	runner *exec.Cmd
	pid1   int // host PID of the instance's PID 1
	exited chan struct{}
}

// partDef is one partition to put in an instance's partitions dir.
type partDef struct {
	name string
	spec *rspec.Spec
}

// trivialSpec is the bundle of the start, scale and memory figures: busybox
// sleep as the init of a generic partition. No console (terminal false):
// crun and runc get the very same config.json, and a pty would only add
// work that is not the runtime's. A generic partition is stopped with
// SIGKILL here (sleep as PID 1 ignores SIGTERM).
func trivialSpec(rootfs string) (*rspec.Spec, error) {
	s, err := specs.Generate(specs.Options{Kind: string(partition.KindGeneric), Rootfs: rootfs})
	if err != nil {
		return nil, err
	}
	s.Process.Args = []string{"/bin/busybox", "sleep", "86400"}
	s.Process.Terminal = false
	s.Annotations[partition.AnnStopSignal] = "SIGKILL"
	s.Annotations[partition.AnnRestart] = string(partition.RestartNo)
	return s, nil
}

// initSpec is the bundle of a real init (systemd, runit), as `metainit spec`
// writes it.
func initSpec(kind, rootfs string) (*rspec.Spec, error) {
	s, err := specs.Generate(specs.Options{Kind: kind, Rootfs: rootfs})
	if err != nil {
		return nil, err
	}
	s.Annotations[partition.AnnRestart] = string(partition.RestartNo)
	return s, nil
}

func writeSpec(dir string, s *rspec.Spec) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}

// bootInstance writes the partitions dir and boots an instance on it. It
// returns once the control socket answers; the partitions start on their own
// (as at a machine's boot).
func (e *env) bootInstance(name string, parts []partDef) (*instance, error) {
	dir := filepath.Join(e.work, "instances", name)
	pdir := filepath.Join(dir, "partitions")
	for _, p := range parts {
		if err := writeSpec(filepath.Join(pdir, p.name), p.spec); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return nil, err
	}
	run := filepath.Join(dir, "run")
	logf, err := os.Create(filepath.Join(dir, "boot.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(e.metainit, "boot", "--nested", "--partitions", pdir, "--run-dir", run)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := e.start(cmd); err != nil {
		return nil, err
	}
	in := &instance{e: e, name: name, dir: dir, sock: filepath.Join(run, "control.sock"), runner: cmd,
		cgroup: "metainit-nested-" + strconv.Itoa(cmd.Process.Pid), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(in.exited)
	}()
	e.onCleanup(in.shutdown)
	if in.pid1, err = waitNestedInit(cmd.Process.Pid, 10*time.Second); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := in.call("list", ""); err == nil {
			return in, nil
		}
		select {
		case <-in.exited:
			return nil, fmt.Errorf("instance %s exited at boot (see %s/boot.log)", name, dir)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("instance %s: control socket silent after 20s", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitNestedInit returns the child of runner that is PID 1 of its own PID
// namespace (NSpid ends in 1): the instance, not some short-lived helper.
func waitNestedInit(runner int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, c := range childrenOf(runner) {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(c) + "/status")
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) == 3 && f[0] == "NSpid:" && f[2] == "1" {
					return c, nil
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("runner %d has no PID 1 child after %s", runner, timeout)
}

func (in *instance) call(verb, name string) (*control.Response, error) {
	resp, err := control.Call(in.sock, &control.Request{Verb: verb, Name: name})
	if err != nil {
		return nil, err
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

func (in *instance) status(name string) (partition.Status, error) {
	resp, err := in.call("status", name)
	if err != nil {
		return partition.Status{}, err
	}
	return resp.Partitions[0], nil
}

func (in *instance) list() ([]partition.Status, error) {
	resp, err := in.call("list", "")
	if err != nil {
		return nil, err
	}
	return resp.Partitions, nil
}

// probeEvery is how often the bench asks an instance for its state while it
// waits. Every figure is taken from the kernel's or metainit's own clock,
// not from when a probe saw it, so probing rarely costs no precision; and
// each probe is work for the PID 1 being measured (a control request
// allocates a 1 MiB receive buffer in PID 1), which must not weigh on it.
const probeEvery = 50 * time.Millisecond

// waitState waits until every named partition (all when names is empty) is
// in one of the states.
func (in *instance) waitState(names []string, timeout time.Duration, states ...partition.State) error {
	deadline := time.Now().Add(timeout)
	for {
		all, err := in.list()
		if err != nil {
			return err
		}
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		var bad []string
		for _, s := range all {
			if len(names) > 0 && !want[s.Name] {
				continue
			}
			ok := false
			for _, st := range states {
				ok = ok || s.State == st
			}
			if s.State == partition.StateFailed {
				return fmt.Errorf("partition %s failed: %s", s.Name, s.Error)
			}
			if !ok {
				bad = append(bad, s.Name+"="+string(s.State))
			}
		}
		if len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("instance %s: not %v after %s: %s", in.name, states, timeout, strings.Join(bad, " "))
		}
		time.Sleep(probeEvery)
	}
}

// cli runs the metainit CLI against this instance.
func (in *instance) cli(args ...string) *exec.Cmd {
	cmd := exec.Command(in.e.metainit, args...)
	cmd.Env = append(os.Environ(), "METAINIT_SOCKET="+in.sock)
	return cmd
}

// mem returns PID 1's Rss and Pss in kB.
func (in *instance) mem() (rss, pss float64, err error) { return memOf(in.pid1) }

// shutdown powers the instance off as Ctrl-C would (SIGTERM to the runner),
// and kills it if that takes longer than a minute. Its cgroups are removed.
func (in *instance) shutdown() {
	select {
	case <-in.exited:
	default:
		_ = in.runner.Process.Signal(unix.SIGTERM)
		select {
		case <-in.exited:
		case <-time.After(60 * time.Second):
			in.e.logf("instance %s: no poweroff after 60s, killing it", in.name)
			_ = unix.Kill(in.pid1, unix.SIGKILL) // takes its PID namespace with it
			_ = in.runner.Process.Kill()
			<-in.exited
		}
	}
	in.e.forget(in.runner)
	in.e.removeCgroups(in.cgroup)
}
