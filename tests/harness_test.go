// Package tests holds metainit's integration tests: each runs the real binary
// as PID 1 of fresh namespaces (metainit boot --nested, the code path of a
// real boot) with real Debian root filesystems, and judges each init by its
// own tools (systemctl, sv). They need root, $METAINIT_BIN and mmdebstrap;
// `make test` provides all three.
package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var (
	rootfsMu    sync.Mutex
	rootfsCache = map[string]string{}
)

// rootfs returns the cached rootfs of an init kind, building it on first use.
func rootfs(t *testing.T, kind string) string {
	t.Helper()
	rootfsMu.Lock()
	defer rootfsMu.Unlock()
	if p, ok := rootfsCache[kind]; ok {
		return p
	}
	out, err := exec.Command("./rootfs/build.sh", kind).Output()
	if err != nil {
		t.Fatalf("build %s rootfs: %v", kind, err)
	}
	p := strings.TrimSpace(string(out))
	rootfsCache[kind] = p
	return p
}

func metainitBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("METAINIT_BIN")
	if bin == "" {
		t.Fatal("METAINIT_BIN is not set: run the integration tests with `make test`")
	}
	if os.Geteuid() != 0 {
		t.Fatal("integration tests need root (namespaces, mounts, cgroups)")
	}
	return bin
}

// Instance is one nested metainit with its partitions directory.
type Instance struct {
	t      *testing.T
	bin    string
	dir    string
	Parts  string
	RunDir string
	mounts []string
	runner *exec.Cmd
	out    *bytes.Buffer
	outMu  *sync.Mutex
	exited chan struct{}
	cgroup string
	// Stdin, when set before Boot, is the write end of PID 1's stdin (its
	// console in nested mode).
	Stdin     *os.File
	stdinPipe bool
	// root: the instance boots with this root filesystem (--root).
	root string
}

// NewInstance makes an empty partitions dir; Cleanup ends whatever the test
// started and checks nothing was left behind.
func NewInstance(t *testing.T) *Instance {
	bin := metainitBin(t)
	dir, err := os.MkdirTemp("", "metainit-test-")
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{t: t, bin: bin, dir: dir, Parts: filepath.Join(dir, "partitions"), RunDir: filepath.Join(dir, "run"),
		out: &bytes.Buffer{}, outMu: &sync.Mutex{}}
	if err := os.MkdirAll(in.Parts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.cleanup)
	// The test dir is a shared mount, so that a rootfs mounted in it after boot
	// reaches the instance (whose mounts are slaves of the host's), as it would
	// on a machine where PID 1 and the admin share one mount namespace.
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	in.mounts = append(in.mounts, dir)
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	return in
}

// WithConsole gives PID 1 a stdin the test writes to (in.Stdin).
func (in *Instance) WithConsole() { in.stdinPipe = true }

// overlay mounts a writable overlay of lower at target.
func (in *Instance) overlay(name, lower, target string) {
	t := in.t
	t.Helper()
	up := filepath.Join(in.dir, "overlay", name)
	for _, d := range []string{target, filepath.Join(up, "upper"), filepath.Join(up, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, up, up)
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		t.Fatalf("overlay for %s: %v", name, err)
	}
	in.mounts = append(in.mounts, target)
}

// UseRoot makes the instance boot with an overlay of the kind's cached rootfs
// as its root filesystem; its partitions dir is that root's
// /etc/metainit/partitions. It returns the root's host path.
func (in *Instance) UseRoot(kind string) string {
	in.root = filepath.Join(in.dir, "root")
	in.overlay("machine-root", rootfs(in.t, kind), in.root)
	in.Parts = filepath.Join(in.root, "etc/metainit/partitions")
	in.RunDir = filepath.Join(in.root, "run/metainit")
	if err := os.MkdirAll(in.Parts, 0o755); err != nil {
		in.t.Fatal(err)
	}
	return in.root
}

// WriteSpec writes a bundle config without a rootfs of its own (root.path is
// whatever the spec says).
func (in *Instance) WriteSpec(name, kind string, edit func(*rspec.Spec)) string {
	t := in.t
	t.Helper()
	bdir := filepath.Join(in.Parts, name)
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(in.bin, "spec", "--init", kind).Output()
	if err != nil {
		t.Fatalf("metainit spec --init %s: %v", kind, err)
	}
	var s rspec.Spec
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&s)
	}
	if out, err = json.MarshalIndent(&s, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bdir, "config.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return bdir
}

// AddPartition writes a bundle made by `metainit spec --init kind` over an
// overlay of the cached rootfs (the cache itself is never written), then lets
// edit change the spec.
func (in *Instance) AddPartition(name, kind string, edit func(*rspec.Spec)) string {
	t := in.t
	t.Helper()
	bdir := filepath.Join(in.Parts, name)
	rootKind := kind
	if kind == "generic" {
		rootKind = "busybox"
	}
	in.overlay(name, rootfs(t, rootKind), filepath.Join(bdir, "rootfs"))
	return in.WriteSpec(name, kind, edit)
}

// Boot starts `metainit boot --nested` and waits until its control socket answers.
func (in *Instance) Boot(extra ...string) {
	t := in.t
	t.Helper()
	args := append([]string{"boot", "--nested", "--partitions", in.Parts, "--run-dir", in.RunDir}, extra...)
	if in.root != "" {
		args = []string{"boot", "--nested", "--root", in.root, "--partitions", "/etc/metainit/partitions", "--run-dir", "/run/metainit"}
		args = append(args, extra...)
	}
	in.runner = exec.Command(in.bin, args...)
	w := &lockedWriter{buf: in.out, mu: in.outMu}
	in.runner.Stdout, in.runner.Stderr = w, w
	if in.stdinPipe {
		r, wr, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		in.runner.Stdin, in.Stdin = r, wr
		defer r.Close()
	}
	if err := in.runner.Start(); err != nil {
		t.Fatal(err)
	}
	in.cgroup = "metainit-nested-" + strconv.Itoa(in.runner.Process.Pid)
	in.exited = make(chan struct{})
	go func() { _ = in.runner.Wait(); close(in.exited) }()
	in.Eventually(10*time.Second, "control socket answers", func() error {
		_, err := in.CLI("list")
		return err
	})
}

type lockedWriter struct {
	buf *bytes.Buffer
	mu  *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// Log returns what the instance printed so far.
func (in *Instance) Log() string {
	in.outMu.Lock()
	defer in.outMu.Unlock()
	return in.out.String()
}

// CLI runs a metainit verb against this instance; a non-zero exit is an error
// carrying stdout and stderr.
func (in *Instance) CLI(args ...string) (string, error) {
	cmd := exec.Command(in.bin, args...)
	cmd.Env = append(os.Environ(), "METAINIT_SOCKET="+filepath.Join(in.RunDir, "control.sock"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("metainit %s: %v: %s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// MustCLI is CLI that fails the test on error.
func (in *Instance) MustCLI(args ...string) string {
	in.t.Helper()
	out, err := in.CLI(args...)
	if err != nil {
		in.t.Fatal(err)
	}
	return out
}

// Exec runs a command in a partition and returns its trimmed output.
func (in *Instance) Exec(name string, cmd ...string) (string, error) {
	out, err := in.CLI(append([]string{"exec", name, "--"}, cmd...)...)
	return strings.TrimSpace(out), err
}

// List returns the partitions by name.
func (in *Instance) List() map[string]partition.Status {
	in.t.Helper()
	var st []partition.Status
	if err := json.Unmarshal([]byte(in.MustCLI("list", "--json")), &st); err != nil {
		in.t.Fatal(err)
	}
	m := map[string]partition.Status{}
	for _, s := range st {
		m[s.Name] = s
	}
	return m
}

// WaitState waits until partition name is in state want.
func (in *Instance) WaitState(name string, want partition.State, timeout time.Duration) partition.Status {
	in.t.Helper()
	var last partition.Status
	in.Eventually(timeout, name+" "+string(want), func() error {
		last = in.List()[name]
		if last.State != want {
			return fmt.Errorf("%s is %s (%s %s)", name, last.State, last.LastExit, last.Error)
		}
		return nil
	})
	return last
}

// Eventually retries f every 100ms until it succeeds or timeout passes.
func (in *Instance) Eventually(timeout time.Duration, what string, f func() error) {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("%s: not within %s: %v\n--- metainit log ---\n%s", what, timeout, err, in.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PID1 returns the host PID of the instance's PID 1 (the runner's child).
func (in *Instance) PID1() int {
	in.t.Helper()
	var pid int
	in.Eventually(5*time.Second, "nested PID 1", func() error {
		// The child belongs to whichever runner thread forked it.
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", in.runner.Process.Pid))
		var f []string
		for _, file := range files {
			b, _ := os.ReadFile(file)
			f = append(f, strings.Fields(string(b))...)
		}
		if len(f) == 0 {
			return fmt.Errorf("runner has no child")
		}
		var err error
		pid, err = strconv.Atoi(f[0])
		return err
	})
	return pid
}

// WaitExit waits for the runner to exit and returns its exit code.
func (in *Instance) WaitExit(timeout time.Duration) int {
	in.t.Helper()
	select {
	case <-in.exited:
		return in.runner.ProcessState.ExitCode()
	case <-time.After(timeout):
		in.t.Fatalf("metainit boot --nested still running after %s\n%s", timeout, in.Log())
	}
	return -1
}

// cleanup powers the instance off if the test left it running, unmounts the
// overlays, and checks the instance left no cgroup behind.
func (in *Instance) cleanup() {
	t := in.t
	if in.Stdin != nil {
		in.Stdin.Close()
	}
	if in.runner != nil {
		select {
		case <-in.exited:
		default:
			_ = in.runner.Process.Signal(syscall.SIGTERM) // the runner powers the instance off
			select {
			case <-in.exited:
			case <-time.After(90 * time.Second):
				t.Errorf("instance did not power off within 90s; killing runner pid %d", in.runner.Process.Pid)
				_ = in.runner.Process.Kill()
				<-in.exited
			}
		}
		if left := cgroupLeftovers(in.cgroup); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	}
	if strings.Contains(in.Log(), "WARNING: DATA RACE") {
		t.Errorf("the race detector found a data race in metainit")
	}
	for i := len(in.mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(in.mounts[i], 0); err != nil {
			t.Errorf("unmount %s: %v", in.mounts[i], err)
		}
	}
	if !t.Failed() {
		_ = os.RemoveAll(in.dir)
	} else {
		t.Logf("test dir kept: %s\n--- metainit log ---\n%s", in.dir, in.Log())
	}
}

// cgroupLeftovers lists directories named name in any cgroup hierarchy.
func cgroupLeftovers(name string) []string {
	var left []string
	matches, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	left = append(left, matches...)
	if _, err := os.Stat("/sys/fs/cgroup/" + name); err == nil {
		left = append(left, "/sys/fs/cgroup/"+name)
	}
	return left
}

// syscallKill sends a signal by name to pid.
func syscallKill(pid int, name string) error {
	sig := unix.SignalNum("SIG" + name)
	if sig == 0 {
		return fmt.Errorf("no signal %s", name)
	}
	return unix.Kill(pid, sig)
}
