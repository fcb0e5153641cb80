package tests

// Issue 7, cases 11-18: a PID 1 that cannot be killed, partitions that cannot
// escape. Each case replays one class of runc's CVEs against metainit, as
// runc's tests/integration/*.bats do against runc, and asserts the outcome.
// The attacks run inside partitions from the probe binary (tests/probe),
// built here and copied into the partition's rootfs overlay.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var (
	secProbeMu   sync.Mutex
	secProbeBins = map[*testing.T]string{}
)

// secProbe builds tests/probe (static, no cgo) into the test's temp dir,
// once per test, and returns its path.
func secProbe(t *testing.T) string {
	t.Helper()
	secProbeMu.Lock()
	defer secProbeMu.Unlock()
	if bin, ok := secProbeBins[t]; ok {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "probe")
	cmd := exec.Command("go", "build", "-o", bin, "./probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	secProbeBins[t] = bin
	t.Cleanup(func() {
		secProbeMu.Lock()
		delete(secProbeBins, t)
		secProbeMu.Unlock()
	})
	return bin
}

// secInstallProbe copies the probe to /probe in the rootfs of bundle bdir
// (the overlay's upper layer: the cached rootfs is not touched).
func secInstallProbe(t *testing.T, bdir string) {
	t.Helper()
	src, err := os.Open(secProbe(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(bdir, "rootfs/probe"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// secSleeper makes a generic partition whose init is busybox sleep with a
// marker in its argument, so that its processes can be recognised from
// anywhere. The marker is padded to days of sleep: a marker of "3" slept 3s,
// and under a slow (-race) build the partition had exited before the test
// looked. As PID 1 of its namespace, sleep ignores SIGTERM: it is stopped by
// SIGKILL.
func secSleeper(marker string) func(*rspec.Spec) {
	return func(s *rspec.Spec) {
		s.Process.Args = []string{"/bin/busybox", "sleep", marker + "00000"}
		s.Annotations[partition.AnnStopSignal] = "SIGKILL"
	}
}

// secChildren lists the children of host pid (all its threads').
func secChildren(pid int) []int {
	var kids []int
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(c); err == nil {
				kids = append(kids, n)
			}
		}
	}
	return kids
}

// secInitPID returns the host pid of a running partition's init: the child
// of the instance's PID 1 whose pid in the instance's namespace is the one
// list shows.
func (in *Instance) secInitPID(name string) int {
	in.t.Helper()
	nsPid := in.List()[name].Pid
	if nsPid == 0 {
		in.t.Fatalf("%s has no init pid", name)
	}
	for _, c := range secChildren(in.PID1()) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "NSpid:" && f[2] == strconv.Itoa(nsPid) {
				return c
			}
		}
	}
	in.t.Fatalf("%s: no child of PID 1 has instance pid %d", name, nsPid)
	return 0
}

// secNsPIDs lists the host pids of every process in the pid namespace of
// host pid init.
func secNsPIDs(init int) []int {
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		return nil
	}
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if ns, err := os.Readlink(d + "/ns/pid"); err == nil && ns == want {
			n, _ := strconv.Atoi(filepath.Base(d))
			pids = append(pids, n)
		}
	}
	return pids
}

// secFD is one open file descriptor of a process, seen from the host.
type secFD struct {
	num   int
	link  string // readlink of /proc/PID/fd/N
	dev   uint64
	ino   uint64
	mode  uint32
	rdev  uint64
	flags int // from fdinfo, octal open flags
}

func (f secFD) key() [2]uint64 { return [2]uint64{f.dev, f.ino} }

func (f secFD) String() string {
	return fmt.Sprintf("fd %d -> %s (dev %d ino %d mode %#o flags %#o)", f.num, f.link, f.dev, f.ino, f.mode, f.flags)
}

// anon reports whether the fd is on the one anonymous inode that every
// epoll, eventfd, signalfd, timerfd and inotify shares: equal (dev, ino)
// there says nothing about sharing a file.
func (f secFD) anon() bool { return strings.HasPrefix(f.link, "anon_inode:") }

// secFDs stats every fd of host pid through /proc (following the magic
// links, as a process holding them could).
func secFDs(pid int) ([]secFD, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var fds []secFD
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		f := secFD{num: n}
		if f.link, err = os.Readlink(filepath.Join(dir, e.Name())); err != nil {
			continue // closed meanwhile
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
			continue
		}
		f.dev, f.ino, f.mode, f.rdev = st.Dev, st.Ino, st.Mode, st.Rdev
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, n)); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "flags:"); ok {
					fl, _ := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
					f.flags = int(fl)
				}
			}
		}
		fds = append(fds, f)
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i].num < fds[j].num })
	return fds, nil
}

func secSha256(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Case 11 (CVE-2024-21626 class): a partition's processes hold no file of
// metainit's. A generic init holds exactly fds 0, 1, 2 on its own console
// pty (or, without a terminal, /dev/null and the console pipe); no process
// of a systemd or runit partition holds any file metainit's PID 1 holds,
// except that partition's own console; every fd of PID 1 beyond stdio is
// close-on-exec. (metainit has no LISTEN_FDS passing, so no other fd is
// legitimate.)
func TestPartitionsHoldNoFDOfMetainit(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("sleeper", "generic", secSleeper("1000"))
	in.AddPartition("quiet", "generic", func(s *rspec.Spec) {
		secSleeper("1001")(s)
		s.Process.Terminal = false
	})
	in.AddPartition("systemd", "systemd", nil)
	in.AddPartition("runit", "runit", nil)
	in.Boot()
	for _, name := range []string{"sleeper", "quiet", "systemd", "runit"} {
		in.WaitState(name, partition.StateReady, 60*time.Second)
	}
	// An exec'd command (a process metainit starts through libcontainer's
	// setns path) holds only the stdio the client passed, and what it opens.
	if out, err := in.Exec("sleeper", "/bin/busybox", "ls", "/proc/self/fd"); err != nil {
		t.Fatal(err)
	} else if got := strings.Fields(out); strings.Join(got, " ") != "0 1 2 3" {
		t.Errorf("exec'd ls holds fds %v, want 0 1 2 and its own directory 3", got)
	}

	pid1 := in.PID1()
	mine, err := secFDs(pid1)
	if err != nil {
		t.Fatal(err)
	}
	held := map[[2]uint64]secFD{}
	for _, f := range mine {
		if f.num > 2 && f.flags&unix.O_CLOEXEC == 0 {
			t.Errorf("metainit's PID 1 holds %s without O_CLOEXEC: any child it starts inherits it", f)
		}
		if !f.anon() {
			held[f.key()] = f
		}
	}

	// The generic init with a terminal: 0, 1, 2 on its own console pty
	// (a slave of the partition's own devpts, which metainit also holds).
	sleeper := in.secInitPID("sleeper")
	fds, err := secFDs(sleeper)
	if err != nil {
		t.Fatal(err)
	}
	var pts unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root/dev/pts/ptmx", sleeper), &pts); err != nil {
		t.Fatal(err)
	}
	if len(fds) != 3 {
		t.Errorf("sleeper's init holds %d fds, want 0, 1, 2: %v", len(fds), fds)
	}
	for i, f := range fds {
		major := unix.Major(f.rdev)
		switch {
		case f.num != i:
			t.Errorf("sleeper's init: unexpected %s", f)
		case f.mode&unix.S_IFMT != unix.S_IFCHR || major < 136 || major > 143:
			t.Errorf("sleeper's init: %s is not a pty slave", f)
		case f.dev != pts.Dev:
			t.Errorf("sleeper's init: %s is not on the partition's own devpts (dev %d)", f, pts.Dev)
		case f.key() != fds[0].key():
			t.Errorf("sleeper's init: %s is not the same pty as fd 0", f)
		}
	}
	if _, ok := held[fds[0].key()]; !ok {
		t.Errorf("sleeper's console %s is not the pty metainit holds", fds[0])
	}

	// Without a terminal: stdin reads end-of-file, stdout and stderr are
	// the console pipe metainit reads.
	quiet := in.secInitPID("quiet")
	quietFDs, err := secFDs(quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(quietFDs) != 3 {
		t.Fatalf("quiet's init holds %d fds, want 0, 1, 2: %v", len(quietFDs), quietFDs)
	}
	// (libcontainer reopens the /dev/null os/exec gave it as the partition's
	// own /dev/null: the machine's is not passed in.)
	if f := quietFDs[0]; f.mode&unix.S_IFMT != unix.S_IFCHR || f.rdev != unix.Mkdev(1, 3) {
		t.Errorf("quiet's init: stdin %s is not /dev/null", f)
	}
	if out, err := in.Exec("quiet", "/bin/busybox", "wc", "-c", "/proc/1/fd/0"); err != nil || out != "0 /proc/1/fd/0" {
		t.Errorf("quiet's init: stdin does not read end-of-file: %q, %v", out, err)
	}
	if quietFDs[1].mode&unix.S_IFMT != unix.S_IFIFO || quietFDs[2].key() != quietFDs[1].key() {
		t.Errorf("quiet's init: stdout %s and stderr %s are not one pipe", quietFDs[1], quietFDs[2])
	} else if _, ok := held[quietFDs[1].key()]; !ok {
		t.Errorf("quiet's init: stdout %s is not the pipe metainit reads", quietFDs[1])
	}

	// Every process of every partition, every fd: none is a file metainit's
	// PID 1 holds, but for the partition's own console (its pty slave, which
	// is /dev/console inside, or the console pipe).
	for _, name := range []string{"systemd", "runit", "sleeper", "quiet"} {
		init := in.secInitPID(name)
		own := map[[2]uint64]bool{}
		if name == "quiet" {
			own[quietFDs[1].key()] = true
		} else {
			var c unix.Stat_t
			if err := unix.Stat(fmt.Sprintf("/proc/%d/root/dev/console", init), &c); err != nil {
				t.Fatal(err)
			}
			own[[2]uint64{c.Dev, c.Ino}] = true
		}
		pids := secNsPIDs(init)
		if len(pids) == 0 {
			t.Fatalf("%s: no processes found", name)
		}
		checked := 0
		for _, pid := range pids {
			fds, err := secFDs(pid)
			if err != nil {
				continue // exited meanwhile
			}
			for _, f := range fds {
				checked++
				if f.anon() || own[f.key()] {
					continue
				}
				if h, ok := held[f.key()]; ok {
					cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
					t.Errorf("%s: process %d (%s) %s is metainit's %s", name, pid,
						strings.ReplaceAll(string(cmd), "\x00", " "), f, h)
				}
			}
		}
		t.Logf("%s: %d processes, %d fds checked against %d of metainit's", name, len(pids), checked, len(held))
	}
}

// secExecCwd asks the instance, over the control socket, to run args in
// partition name with working directory cwd (the CLI has no flag for it;
// the protocol has). Stdin reads nothing; output is discarded.
func (in *Instance) secExecCwd(name, cwd string, args ...string) (*control.Response, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	return control.Call(filepath.Join(in.RunDir, "control.sock"),
		&control.Request{Verb: "exec", Name: name, Args: args, Cwd: cwd}, null, null, null)
}

// Case 12 (CVE-2024-21626 class): a working directory under /proc, such as
// /proc/self/fd/N (whatever libcontainer's init process has open as fd N,
// once the host's cgroupfs), is refused: in config.json at load time, by
// name; in an exec request, by metainit; and reached through a symlink in
// the rootfs (which no check of the path can see), by libcontainer, for
// every N. Nothing runs in any of these cases.
func TestCwdUnderProcRefused(t *testing.T) {
	in := NewInstance(t)
	good := in.AddPartition("good", "generic", secSleeper("1000"))
	in.AddPartition("procfd", "generic", func(s *rspec.Spec) {
		secSleeper("1001")(s)
		s.Process.Cwd = "/proc/self/fd/7"
	})
	sym := in.AddPartition("sym", "generic", func(s *rspec.Spec) {
		s.Process.Args = []string{"/bin/busybox", "touch", "/ran"}
		s.Process.Cwd = "/escape"
	})
	link := filepath.Join(sym, "rootfs/escape")
	if err := os.Symlink("/proc/self/fd/3", link); err != nil {
		t.Fatal(err)
	}
	in.Boot()
	in.WaitState("good", partition.StateReady, 30*time.Second)

	st := in.WaitState("procfd", partition.StateFailed, 10*time.Second)
	if want := `field process.cwd: "/proc/self/fd/7" is under /proc`; !strings.Contains(st.Error, want) {
		t.Errorf("procfd: error %q does not say %q", st.Error, want)
	}
	if out, err := in.CLI("start", "procfd"); err == nil || !strings.Contains(out+err.Error(), "process.cwd") {
		t.Errorf("procfd: start: %q, %v", out, err)
	}

	// Through a symlink: libcontainer's own checks (it creates the cwd inside
	// the rootfs, and verifies after chdir that it is under the root).
	in.WaitState("sym", partition.StateFailed, 10*time.Second)
	breakouts := 0
	for n := 0; n < 32; n++ {
		if err := os.Remove(link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/proc/self/fd/"+strconv.Itoa(n), link); err != nil {
			t.Fatal(err)
		}
		out, err := in.CLI("start", "sym")
		if err == nil {
			t.Errorf("cwd /escape -> /proc/self/fd/%d: started: %s", n, out)
			continue
		}
		if strings.Contains(err.Error(), "possible container breakout detected") {
			breakouts++
		}
		if st := in.List()["sym"]; st.State != partition.StateFailed || st.Pid != 0 {
			t.Errorf("cwd /escape -> /proc/self/fd/%d: %s, pid %d", n, st.State, st.Pid)
		}
	}
	t.Logf("libcontainer refused all 32 starts; %d as a detected breakout (an fd that was a directory outside the root)", breakouts)
	if _, err := os.Lstat(filepath.Join(sym, "rootfs/ran")); err == nil {
		t.Errorf("sym's init ran")
	}

	// exec: refused by metainit when the path says /proc, by libcontainer
	// through the symlink.
	glink := filepath.Join(good, "rootfs/escape")
	for n := 0; n < 32; n++ {
		fd := "/proc/self/fd/" + strconv.Itoa(n)
		resp, err := in.secExecCwd("good", fd, "/bin/busybox", "touch", "/ran")
		if err != nil {
			t.Fatal(err)
		}
		if resp.OK || !strings.Contains(resp.Error, `exec: cwd: "`+fd+`" is under /proc`) {
			t.Errorf("exec with cwd %s: %+v", fd, resp)
		}
		_ = os.Remove(glink)
		if err := os.Symlink(fd, glink); err != nil {
			t.Fatal(err)
		}
		if resp, err = in.secExecCwd("good", "/escape", "/bin/busybox", "touch", "/ran"); err != nil {
			t.Fatal(err)
		}
		if resp.OK || !strings.Contains(resp.Error, "unable to start container process") {
			t.Errorf("exec with cwd /escape -> %s: %+v", fd, resp)
		}
	}
	if _, err := os.Lstat(filepath.Join(good, "rootfs/ran")); err == nil {
		t.Errorf("a command exec'd with a cwd under /proc ran")
	}
	if st := in.List()["good"]; st.State != partition.StateReady {
		t.Errorf("good: %s", st.State)
	}
}

// Case 13 (CVE-2019-5736 class): from inside a partition, metainit's binary
// cannot be written through /proc/PID/exe of a process metainit started:
// libcontainer's "metainit init" that every exec passes through, or metainit
// itself run inside through a "#!/proc/self/exe" script (the original
// exploit's trick). An attacker in the partition stops each such process the
// moment it appears and tries O_WRONLY, O_RDWR and O_TRUNC opens while it
// runs, then reopens an O_PATH handle for writing once it is dead. Every
// attempt fails and $METAINIT_BIN's sha256 is unchanged.
func TestMetainitBinaryCannotBeOverwritten(t *testing.T) {
	in := NewInstance(t)
	before := secSha256(t, in.bin)
	v := in.AddPartition("victim", "generic", secSleeper("1000"))
	secInstallProbe(t, v)
	if err := os.WriteFile(filepath.Join(v, "rootfs/evil"), []byte("#!/proc/self/exe\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	in.Boot()
	in.WaitState("victim", partition.StateReady, 30*time.Second)
	init := in.secInitPID("victim")

	for _, phase := range []struct {
		name, match string
		run         []string
	}{
		{"#!/proc/self/exe script", "/evil", []string{"/evil"}},
		{"metainit init of an exec", " init", []string{"/bin/busybox", "true"}},
	} {
		var out string
		var attackErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			out, attackErr = in.Exec("victim", "/probe", "catch-exe", "20s", "2", phase.match)
		}()
		// Wait for the attacker to watch, then give it victims until it has
		// caught two (or its 20s are up).
		in.Eventually(10*time.Second, "attacker runs", func() error {
			for _, pid := range secNsPIDs(init) {
				if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); strings.Contains(string(b), "catch-exe") {
					return nil
				}
			}
			return fmt.Errorf("no probe yet")
		})
		runs := 0
	feed:
		for {
			select {
			case <-done:
				break feed
			default:
				_, _ = in.Exec("victim", phase.run...) // killed by the attacker, mostly
				runs++
			}
		}
		if attackErr != nil {
			t.Fatalf("%s: attacker: %v\n%s", phase.name, attackErr, out)
		}
		t.Logf("%s: %d runs; attacker:\n%s", phase.name, runs, out)
		caught := strings.Count(out, "caught pid ")
		if caught == 0 {
			t.Errorf("%s: the attacker caught no process in %d runs: the attack was not tried", phase.name, runs)
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasSuffix(l, ": ok") && !strings.HasPrefix(l, "open exe O_PATH") {
				t.Errorf("%s: %s", phase.name, l)
			}
		}
	}
	if after := secSha256(t, in.bin); after != before {
		t.Fatalf("%s changed: sha256 %s, was %s", in.bin, after, before)
	}
	if st := in.List()["victim"]; st.State != partition.StateReady {
		t.Errorf("victim: %s", st.State)
	}
}

// secCanaries is a directory of host files a hostile partition aims at, with
// what they were: content, mode and modification time.
type secCanaries struct {
	dir  string
	want map[string]string
}

func secNewCanaries(t *testing.T, files ...string) *secCanaries {
	t.Helper()
	dir, err := os.MkdirTemp("", "metainit-canary-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	c := &secCanaries{dir: dir, want: map[string]string{}}
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("canary "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.want = c.snapshot(t)
	return c
}

func (c *secCanaries) path(f string) string { return filepath.Join(c.dir, f) }

// snapshot describes every file under the canary dir.
func (c *secCanaries) snapshot(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(c.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		d := fmt.Sprintf("%s %d %s", fi.Mode(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			d += " " + strconv.Quote(string(b))
		}
		m[p] = d
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// check fails the test if any canary changed or appeared, or if anything is
// mounted on or under the canary dir in the host's or the instance's mount
// namespace.
func (c *secCanaries) check(t *testing.T, in *Instance) {
	t.Helper()
	got := c.snapshot(t)
	for p, w := range c.want {
		if got[p] != w {
			t.Errorf("host file %s changed: %s, was %s", p, got[p], w)
		}
	}
	for p, g := range got {
		if _, ok := c.want[p]; !ok {
			t.Errorf("host file %s appeared: %s", p, g)
		}
	}
	for _, mi := range []string{"/proc/self/mountinfo", fmt.Sprintf("/proc/%d/mountinfo", in.PID1())} {
		b, err := os.ReadFile(mi)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], c.dir) {
				t.Errorf("%s: mount on a host path: %s", mi, l)
			}
		}
	}
}

// secCorePattern reads the machine's core_pattern and restores it when the
// test ends, whatever happened.
func secCorePattern(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); string(now) != string(b) {
			_ = os.WriteFile("/proc/sys/kernel/core_pattern", b, 0o644)
		}
	})
	return string(b)
}

func secReplace(t *testing.T, path, target string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// Case 14 (CVE-2019-16884, CVE-2025-31133, CVE-2025-52565 class): a
// partition's rootfs is turned hostile while it is stopped: /proc, /sys, /dev
// and /tmp (mount targets) become symlinks to host directories; /dev/null,
// /dev/console, /dev/ptmx and /dev/pts/N symlinks to core_pattern or a host
// file, /dev/pts a symlink to a host directory. Each
// next start is refused, or it starts and writing every path the attack
// aimed at from inside changes nothing. Stopping runit and sysvinit
// partitions whose stop files (/run/runit.stopit, /etc/runit, /run/initctl,
// /dev/initctl) were made symlinks to host files does not touch those files.
// No host file changes; nothing is mounted on a host path; core_pattern
// stays as it was.
func TestHostileRootfsTouchesNoHostFile(t *testing.T) {
	core := secCorePattern(t)
	c := secNewCanaries(t, "file", "dir/file", "stopit", "reboot", "initctl")
	if err := unix.Mkfifo(c.path("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader on the host FIFO, so that a write to it would succeed. (A
	// raw fd: an os.File would wait for data instead of saying EAGAIN.)
	fifo, err := unix.Open(c.path("fifo"), unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fifo)
	c.want = c.snapshot(t)

	// Partitions whose /dev is their rootfs's own (no tmpfs over it), so
	// that what is in the rootfs is what libcontainer finds at start.
	noDevTmpfs := func(marker string) func(*rspec.Spec) {
		return func(s *rspec.Spec) {
			secSleeper(marker)(s)
			for i, m := range s.Mounts {
				if m.Destination == "/dev" {
					s.Mounts = append(s.Mounts[:i], s.Mounts[i+1:]...)
					break
				}
			}
		}
	}
	hostile := map[string]struct {
		edit  func(*rspec.Spec)
		turn  map[string]string // rootfs path -> symlink target
		probe bool
	}{
		"proc":           {secSleeper("1"), map[string]string{"proc": c.path("dir")}, false},
		"sys":            {secSleeper("2"), map[string]string{"sys": c.path("dir")}, false},
		"tmp":            {secSleeper("3"), map[string]string{"tmp": c.path("dir")}, true},
		"null-core":      {noDevTmpfs("4"), map[string]string{"dev/null": "/proc/sys/kernel/core_pattern"}, true},
		"null-host":      {noDevTmpfs("5"), map[string]string{"dev/null": c.path("file")}, true},
		"console-core":   {noDevTmpfs("6"), map[string]string{"dev/console": "/proc/sys/kernel/core_pattern"}, true},
		"console-host":   {noDevTmpfs("7"), map[string]string{"dev/console": c.path("file")}, true},
		"pts-host":       {noDevTmpfs("8"), map[string]string{"dev/pts": c.path("dir")}, true},
		"ptmx-host":      {noDevTmpfs("9"), map[string]string{"dev/ptmx": c.path("file")}, true},
		"pts-n":          {noDevTmpfs("12"), map[string]string{"dev/pts/0": "/proc/sys/kernel/core_pattern", "dev/pts/1": c.path("file")}, true},
		"dev-host":       {secSleeper("13"), map[string]string{"dev": c.path("dir")}, true},
		"null-rel-proc":  {noDevTmpfs("10"), map[string]string{"dev/null": "../proc/sys/kernel/core_pattern"}, true},
		"console-climbs": {noDevTmpfs("11"), map[string]string{"dev/console": "../../../../../../../.." + c.path("file")}, true},
	}
	in := NewInstance(t)
	bundles := map[string]string{}
	for name, h := range hostile {
		bundles[name] = in.AddPartition(name, "generic", h.edit)
		// The image's own /dev/console (5:1) cannot be opened under the
		// partition's device rules, and libcontainer opens it to bind the
		// console over it: without a /dev tmpfs, start from a rootfs
		// without one, as most images are.
		if err := os.Remove(filepath.Join(bundles[name], "rootfs/dev/console")); err != nil {
			t.Fatal(err)
		}
		if h.probe {
			secInstallProbe(t, bundles[name])
		}
	}
	in.AddPartition("runit", "runit", nil)
	in.AddPartition("sysvinit", "sysvinit", nil)
	in.Boot()
	for name := range bundles {
		in.WaitState(name, partition.StateReady, 30*time.Second)
	}
	in.WaitState("runit", partition.StateReady, 60*time.Second)
	in.WaitState("sysvinit", partition.StateReady, 60*time.Second)

	// The generic partitions: stopped, turned hostile, started again.
	for name, h := range hostile {
		in.MustCLI("stop", name)
		for p, target := range h.turn {
			secReplace(t, filepath.Join(bundles[name], "rootfs", p), target)
		}
	}
	for name, h := range hostile {
		out, err := in.CLI("start", name)
		if err != nil {
			t.Logf("%s: start refused: %v", name, err)
			if st := in.List()[name]; st.State != partition.StateFailed || st.Pid != 0 {
				t.Errorf("%s: refused, yet %s with pid %d", name, st.State, st.Pid)
			}
			continue
		}
		t.Logf("%s: started: %s", name, strings.TrimSpace(out))
		if !h.probe {
			t.Errorf("%s: started with a hostile rootfs", name)
			continue
		}
		// It started: aim at every path the attack went through.
		for _, target := range []string{"/dev/null", "/dev/console", "/dev/ptmx", "/proc/sys/kernel/core_pattern",
			"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/tmp/file",
			c.path("file"), c.path("dir/file")} {
			out, _ := in.Exec(name, "/probe", "write", target, "metainit-test-pwned")
			t.Logf("%s: %s", name, strings.ReplaceAll(out, "\n", "; "))
			if strings.HasPrefix(target, "/proc/sys/") && strings.Contains(out, "write "+target+": ok") {
				t.Errorf("%s: wrote %s", name, target)
			}
		}
	}

	// runit: /run/runit.stopit a symlink to a host file, /etc/runit a
	// symlink to a host directory holding stopit and reboot; sysvinit: its
	// FIFOs as symlinks to a host FIFO (with a reader) and, climbing with
	// "..", to a host file.
	for _, cmd := range [][]string{
		{"test", "-f", "/run/runit.reboot"}, // left as it is: chmod'ed first, inside
		{"rm", "-f", "/run/runit.stopit"},
		{"ln", "-s", c.path("stopit"), "/run/runit.stopit"},
		{"rm", "-rf", "/etc/runit"},
		{"ln", "-s", c.dir, "/etc/runit"},
	} {
		if out, err := in.Exec("runit", cmd...); err != nil {
			t.Fatalf("runit: %v: %v: %s", cmd, err, out)
		}
	}
	for _, cmd := range [][]string{
		{"rm", "-f", "/run/initctl", "/dev/initctl"},
		{"ln", "-s", c.path("fifo"), "/run/initctl"},
		{"ln", "-s", "../../../../../../../.." + c.path("initctl"), "/dev/initctl"},
	} {
		if out, err := in.Exec("sysvinit", cmd...); err != nil {
			t.Fatalf("sysvinit: %v: %v: %s", cmd, err, out)
		}
	}
	for _, name := range []string{"runit", "sysvinit"} {
		if _, err := in.CLI("stop", name); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
		if st := in.List()[name]; st.State != partition.StateStopped {
			t.Errorf("%s: %s after stop", name, st.State)
		}
		refused := false
		for _, l := range strings.Split(in.Log(), "\n") {
			if strings.Contains(l, "partition "+name+": stop request failed, killing") {
				t.Logf("%s", l)
				refused = true
			}
		}
		if !refused {
			t.Errorf("%s: its stop protocol was not refused the hostile files:\n%s", name, in.Log())
		}
	}

	buf := make([]byte, 4096)
	if n, _ := unix.Read(fifo, buf); n > 0 {
		t.Errorf("host FIFO %s received %q", c.path("fifo"), buf[:n])
	}
	c.check(t, in)
	if now, _ := os.ReadFile("/proc/sys/kernel/core_pattern"); string(now) != core {
		t.Errorf("core_pattern changed: %q, was %q", now, core)
	}
}

// secMountsUnder lists the mount points under dir in a mountinfo file.
func secMountsUnder(t *testing.T, mountinfo, dir string) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	// The union of three reads: a read of mountinfo can skip an entry while
	// mounts change (see secMountCount), and a skip only ever hides one.
	for i := 0; i < 3; i++ {
		b, err := os.ReadFile(mountinfo)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
				m[f[4]] = true
			}
		}
	}
	return m
}

// Case 15: from inside a partition, nothing outside it can be seen,
// signalled, written, mounted over or connected to: not another partition's
// processes, not the host's, not metainit's PID 1; not /proc/sys or /sys
// (read-only); not the host's mounts (a partition's mounts stay in its own
// namespace); not metainit's control socket: no path to it, no abstract
// socket of metainit's, and no file handle (open_by_handle_at, the
// "shocker" attack) through /run/host, which is a tmpfs of its own and no
// longer a bind of whatever file system the run dir is on.
//
// A partition holding CAP_SYS_ADMIN in the initial user namespace, as
// `metainit spec` gives every init (systemd needs it to mount), is not
// contained by any of this: it can umount /proc/sys or mount a fresh proc
// and write the machine's sysctls, and open_by_handle_at through its cgroup
// mounts opens the machine's whole cgroup tree. Those hold only for a
// partition without CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH, which is what
// "unpriv" checks here; closing them for inits needs user namespaces (see
// the report of issue 7).
func TestPartitionCannotReachOutside(t *testing.T) {
	host := exec.Command("sleep", "987654")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Process.Kill(); _ = host.Wait() })

	in := NewInstance(t)
	a := in.AddPartition("attacker", "generic", secSleeper("2001"))
	secInstallProbe(t, a)
	in.AddPartition("other", "generic", secSleeper("2002"))
	u := in.AddPartition("unpriv", "generic", func(s *rspec.Spec) {
		secSleeper("2003")(s)
		c := s.Process.Capabilities
		for _, set := range []*[]string{&c.Bounding, &c.Effective, &c.Permitted} {
			kept := (*set)[:0]
			for _, cp := range *set {
				if cp != "CAP_SYS_ADMIN" && cp != "CAP_DAC_READ_SEARCH" {
					kept = append(kept, cp)
				}
			}
			*set = kept
		}
	})
	secInstallProbe(t, u)
	in.Boot()
	for _, name := range []string{"attacker", "other", "unpriv"} {
		in.WaitState(name, partition.StateReady, 30*time.Second)
	}
	pid1 := in.PID1()
	other := in.secInitPID("other")
	attacker := in.secInitPID("attacker")
	sock := filepath.Join(in.RunDir, "control.sock")
	mountsBefore := map[string]map[string]bool{}
	for _, mi := range []string{"/proc/self/mountinfo", fmt.Sprintf("/proc/%d/mountinfo", pid1)} {
		mountsBefore[mi] = secMountsUnder(t, mi, in.dir)
	}

	// See: only its own processes.
	out, err := in.Exec("attacker", "/probe", "procs")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) < 2 || !(f[0] == "1" && l == "1 /bin/busybox sleep 200100000" || strings.HasSuffix(l, " /probe procs")) {
			t.Errorf("attacker sees a process not its own: %q", l)
		}
	}

	// Signal: kill(-1, SIGKILL) reaches every process the caller may
	// signal but its namespace's init; nothing outside.
	if out, err = in.Exec("attacker", "/probe", "kill-all"); err != nil {
		t.Fatal(err)
	}
	t.Logf("attacker: %s", out)
	time.Sleep(200 * time.Millisecond)
	for what, pid := range map[string]int{"host process": host.Process.Pid, "other's init": other, "metainit's PID 1": pid1, "attacker's own init": attacker} {
		if err := unix.Kill(pid, 0); err != nil {
			t.Errorf("%s (pid %d) is gone after the attacker's kill(-1): %v", what, pid, err)
		} else if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), ") Z ") {
			t.Errorf("%s (pid %d) is a zombie after the attacker's kill(-1)", what, pid)
		}
	}
	for _, name := range []string{"attacker", "other"} {
		if st := in.List()[name]; st.State != partition.StateReady {
			t.Errorf("%s after kill(-1): %s", name, st.State)
		}
	}

	// Write: /proc/sys and /sys are read-only (the probe writes back what
	// the file holds: harmless should it work, and it would say so).
	writes := []string{"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname", "/proc/sys/vm/overcommit_memory",
		"/proc/sysrq-trigger", "/sys/kernel/mm/transparent_hugepage/enabled", "/sys/class/net/lo/mtu"}
	for _, f := range writes {
		if _, err := os.Stat(f); err != nil {
			continue // not on this kernel
		}
		data := []string{}
		if f == "/proc/sysrq-trigger" {
			data = []string{"h"} // help: the one harmless request
		}
		for _, name := range []string{"attacker", "unpriv"} {
			out, _ := in.Exec(name, append([]string{"/probe", "write", f}, data...)...)
			if !strings.Contains(out, "open "+f+": EROFS") {
				t.Errorf("%s: write %s: %q, want EROFS", name, f, out)
			}
		}
	}
	// Without CAP_SYS_ADMIN the read-only mounts cannot be undone either.
	for _, cmd := range [][]string{
		{"/bin/busybox", "umount", "/proc/sys"},
		{"/bin/busybox", "umount", "-l", "/sys"},
		{"/bin/busybox", "mount", "-o", "remount,rw", "/sys"},
		{"/bin/busybox", "mount", "-o", "remount,rw,bind", "/proc/sys"},
		{"/bin/busybox", "mount", "-t", "proc", "proc", "/mnt"},
		{"/bin/busybox", "mount", "-t", "sysfs", "sysfs", "/mnt"},
	} {
		if out, err := in.Exec("unpriv", cmd...); err == nil {
			t.Errorf("unpriv: %v succeeded: %s", cmd, out)
		}
	}
	if out, _ := in.Exec("unpriv", "/probe", "write", "/proc/sys/kernel/core_pattern"); !strings.Contains(out, "EROFS") {
		t.Errorf("unpriv: core_pattern after the mount attempts: %q", out)
	}
	// ...nor can it decode a file handle on any mount.
	for _, m := range []string{"/run/host", "/sys/fs/cgroup/pids", "/dev", "/run"} {
		out, _ := in.Exec("unpriv", "/probe", "handle-root", m)
		if strings.Contains(out, "open_by_handle_at") && strings.Contains(out, "readdir of the file system's root: ok") {
			t.Errorf("unpriv: opened the root of the file system mounted at %s:\n%s", m, out)
		}
	}

	// Handles: through /run/host, the one mount metainit makes from its own
	// file systems, neither the control socket nor any host file opens.
	hostPaths := []string{strings.TrimPrefix(sock, "/"), "etc/shadow", "etc/hostname"}
	for _, name := range []string{"attacker", "unpriv"} {
		out, _ := in.Exec(name, append([]string{"/probe", "handle-root", "/run/host"}, hostPaths...)...)
		for _, p := range hostPaths {
			if strings.Contains(out, "openat root "+p+": ok") {
				t.Errorf("%s: opened the host's /%s by file handle through /run/host:\n%s", name, p, out)
			}
		}
		if strings.Contains(out, "connect SOCK_SEQPACKET") {
			t.Errorf("%s: connected to metainit's control socket by file handle:\n%s", name, out)
		}
	}

	// Mount: over everything metainit gave it, and over paths that exist on
	// the host too; none of it is seen outside.
	for _, cmd := range [][]string{
		{"/bin/busybox", "mount", "-t", "tmpfs", "tmpfs", "/run/host"},
		{"/bin/busybox", "touch", "/run/host/attacker-was-here"},
		{"/bin/busybox", "mount", "-t", "tmpfs", "tmpfs", "/mnt"},
		{"/bin/busybox", "mkdir", "-p", "/mnt/root"},
		{"/bin/busybox", "mount", "--rbind", "/", "/mnt/root"},
		{"/bin/busybox", "mount", "-t", "tmpfs", "tmpfs", "/tmp"},
		{"/bin/busybox", "mount", "-t", "tmpfs", "tmpfs", "/etc"},
	} {
		if out, err := in.Exec("attacker", cmd...); err != nil {
			t.Fatalf("attacker: %v: %v: %s", cmd, err, out)
		}
	}
	hostDir := filepath.Join(in.RunDir, "partitions/attacker/host")
	if _, err := os.Stat(filepath.Join(hostDir, "attacker-was-here")); err == nil {
		t.Errorf("the attacker's file on its /run/host tmpfs is in %s", hostDir)
	}
	for mi, before := range mountsBefore {
		for m := range secMountsUnder(t, mi, in.dir) {
			if !before[m] {
				t.Errorf("%s: new mount %s after the attacker's mounts", mi, m)
			}
		}
	}
	if out, err := in.Exec("other", "/bin/busybox", "ls", "/mnt", "/run/host"); err != nil || out != "/mnt:\n\n/run/host:" {
		t.Errorf("other sees: %q, %v", out, err)
	}

	// Connect: metainit's control socket has no path inside, and none of
	// metainit's sockets is abstract (abstract names are shared by every
	// process of the network namespace, and partitions share the machine's).
	if out, err = in.Exec("attacker", "/probe", "connect", sock); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, ": ENOENT") != 3 {
		t.Errorf("attacker: connect %s: %q, want ENOENT thrice", sock, out)
	}
	mine := map[string]bool{}
	fds, err := secFDs(pid1)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fds {
		if ino, ok := strings.CutPrefix(f.link, "socket:["); ok {
			mine[strings.TrimSuffix(ino, "]")] = true
		}
	}
	if out, err = in.Exec("attacker", "/bin/busybox", "cat", "/proc/net/unix"); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 7 || !mine[f[6]] {
			continue
		}
		seen++
		if len(f) < 8 {
			continue // unnamed: a connection, reachable by no name
		}
		if strings.HasPrefix(f[7], "@") {
			t.Errorf("metainit's socket %s is abstract: every partition can connect to it", f[7])
			continue
		}
		if out, _ := in.Exec("attacker", "/probe", "connect", f[7]); strings.Count(out, ": ENOENT") != 3 {
			t.Errorf("attacker: connect to metainit's %s: %q", f[7], out)
		}
	}
	if seen == 0 {
		t.Errorf("none of metainit's %d sockets is listed in the attacker's /proc/net/unix: the check saw nothing", len(mine))
	}

	// The tmpfs behind /run/host lives as long as the init.
	pid1Mounts := fmt.Sprintf("/proc/%d/mountinfo", pid1)
	if n := secMountCount(t, pid1Mounts, hostDir); n != 1 {
		t.Errorf("%d mounts on %s while attacker runs, want its tmpfs", n, hostDir)
	}
	in.MustCLI("stop", "attacker")
	if n := secMountCount(t, pid1Mounts, hostDir); n != 0 {
		t.Errorf("%d mounts left on %s after attacker stopped", n, hostDir)
	}
}

// secMountCount counts the mounts at mount point p in a mountinfo file.
// Reading mountinfo is not atomic: while mounts change anywhere its changes
// propagate to (other tests' overlays, on a shared tree), the kernel's
// iteration can skip an entry. A skip only ever hides mounts, so the count is
// the largest of three reads.
func secMountCount(t *testing.T, mountinfo, p string) int {
	t.Helper()
	most := 0
	for i := 0; i < 3; i++ {
		b, err := os.ReadFile(mountinfo)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 4 && f[4] == p {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// Case 16: partition a mounts a tmpfs over /dev/shm and /mnt and deletes
// /dev/null. None of it is seen on the host, by metainit, or by partition b
// (which boots from the very same rootfs directory), before or after b
// restarts; and a's own next start has its /dev/null again.
func TestPartitionMountsStayInside(t *testing.T) {
	in := NewInstance(t)
	a := in.AddPartition("a", "generic", secSleeper("3001"))
	in.WriteSpec("b", "generic", func(s *rspec.Spec) {
		secSleeper("3002")(s)
		s.Root.Path = filepath.Join(a, "rootfs")
	})
	in.Boot()
	in.WaitState("a", partition.StateReady, 30*time.Second)
	in.WaitState("b", partition.StateReady, 30*time.Second)
	pid1 := in.PID1()
	infos := []string{"/proc/self/mountinfo", fmt.Sprintf("/proc/%d/mountinfo", pid1)}
	before := map[string]int{}
	for _, mi := range infos {
		for _, p := range []string{"/mnt", "/dev/shm", "/dev/null"} {
			before[mi+" "+p] = secMountCount(t, mi, p)
		}
	}

	for _, cmd := range []string{
		"mount -t tmpfs tmpfs /dev/shm && touch /dev/shm/a-was-here",
		"mount -t tmpfs tmpfs /mnt && touch /mnt/a-was-here",
		"rm /dev/null && ! test -e /dev/null",
	} {
		if out, err := in.Exec("a", "/bin/busybox", "sh", "-c", cmd); err != nil {
			t.Fatalf("a: %s: %v: %s", cmd, err, out)
		}
	}

	check := func(when string) {
		t.Helper()
		// The host, and metainit's own view (its mount namespace).
		for _, root := range []string{"/", fmt.Sprintf("/proc/%d/root/", pid1)} {
			var st unix.Stat_t
			if err := unix.Stat(root+"dev/null", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
				t.Errorf("%s: %sdev/null: %v, mode %#o rdev %d", when, root, err, st.Mode, st.Rdev)
			}
			for _, f := range []string{"dev/shm/a-was-here", "mnt/a-was-here"} {
				if _, err := os.Lstat(root + f); err == nil {
					t.Errorf("%s: %s%s exists", when, root, f)
				}
			}
		}
		for _, mi := range infos {
			for _, p := range []string{"/mnt", "/dev/shm", "/dev/null"} {
				if n := secMountCount(t, mi, p); n != before[mi+" "+p] {
					t.Errorf("%s: %s: %d mounts on %s, were %d", when, mi, n, p, before[mi+" "+p])
				}
			}
		}
		// The rootfs directory a and b share.
		if _, err := os.Lstat(filepath.Join(a, "rootfs/mnt/a-was-here")); err == nil {
			t.Errorf("%s: a's tmpfs file is in the shared rootfs", when)
		}
		// Partition b.
		out, err := in.Exec("b", "/bin/busybox", "sh", "-c", "test -c /dev/null && echo null ok; ls -A /dev/shm /mnt; grep -c ' /mnt ' /proc/self/mountinfo; true")
		if want := "null ok\n/dev/shm:\n\n/mnt:\n0"; err != nil || out != want {
			t.Errorf("%s: b sees %q (%v), want %q", when, out, err, want)
		}
	}
	check("while a runs")
	in.MustCLI("stop", "b")
	in.MustCLI("start", "b")
	in.WaitState("b", partition.StateReady, 30*time.Second)
	check("after b restarted")
	in.MustCLI("stop", "a")
	check("after a stopped")
	in.MustCLI("start", "a")
	in.WaitState("a", partition.StateReady, 30*time.Second)
	if out, err := in.Exec("a", "/bin/busybox", "sh", "-c", "test -c /dev/null && ls -A /dev/shm /mnt"); err != nil || out != "/dev/shm:\n\n/mnt:" {
		t.Errorf("a after restart: %q, %v", out, err)
	}
}

// Case 17: invalid config.json files (from partition/testdata/invalid, and
// one too large to keep in git) fail alone, each with an error naming the
// field; the good partition next to them boots.
func TestInvalidConfigsFailAlone(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("good", "generic", secSleeper("4001"))
	bad := map[string]string{
		"process-cwd-proc-self-fd": `field process.cwd: "/proc/self/fd/7" is under /proc`,
		"sysctl-net-host-network":  "field linux.sysctl: net.ipv4.ip_forward: needs a network namespace",
		"sysctl-core-pattern":      "field linux.sysctl: kernel.core_pattern",
		"namespaces-join-host-pid": "field linux.namespaces[0].path",
		"duplicate-key":            "field process: given twice",
		"deep-unknown-field":       "nested deeper than 32 levels",
		"not-utf8":                 "line 15, column 17: not valid UTF-8",
		"ociversion-garbage":       `field ociVersion: "1.0.0; rm -rf /"`,
		"syntax-trailing-data":     "line 43, column 2",
	}
	for name := range bad {
		bdir := in.AddPartition(name, "generic", nil)
		data, err := os.ReadFile(filepath.Join("../partition/testdata/invalid", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bdir, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	huge := in.AddPartition("huge", "generic", nil)
	if err := os.WriteFile(filepath.Join(huge, "config.json"), []byte(`{"x": "`+strings.Repeat("a", 2<<20)+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad["huge"] = "larger than 1048576 bytes"

	in.Boot()
	in.WaitState("good", partition.StateReady, 30*time.Second)
	list := in.List()
	for name, want := range bad {
		st := list[name]
		if st.State != partition.StateFailed || !strings.Contains(st.Error, "config.json") || !strings.Contains(st.Error, want) {
			t.Errorf("%s: %s, error %q; want failed, naming config.json and %q", name, st.State, st.Error, want)
		}
		if out, err := in.CLI("start", name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start %s: %q, %v", name, out, err)
		}
	}
	if st := in.List()["good"]; st.State != partition.StateReady {
		t.Errorf("good: %s", st.State)
	}
}
