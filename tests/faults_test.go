package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Issue 7: PID 1 under fire, partitions misbehaving, the control socket
// abused. Each case asserts its outcome.

// sleeper is a generic partition whose init is a shell that waits and exits
// 0 on SIGTERM, its stop signal. (A plain `sleep` as PID 1 of a namespace
// would ignore SIGTERM: the kernel delivers to a namespace's init only the
// signals it handles, SIGKILL aside, so metainit would have to kill it at
// its stop timeout.)
func sleeper(s *rspec.Spec) {
	s.Process.Args = []string{"/bin/busybox", "sh", "-c", `trap "exit 0" TERM; sleep 100000 & wait`}
}

func (in *Instance) info() control.Info {
	in.t.Helper()
	var i control.Info
	if err := json.Unmarshal([]byte(in.MustCLI("info", "--json")), &i); err != nil {
		in.t.Fatal(err)
	}
	return i
}

// zombiesOf lists the zombie children of host pid.
func zombiesOf(pid int) []int {
	var z []int
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			st, _ := os.ReadFile("/proc/" + c + "/stat")
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && strings.HasPrefix(string(st[i:]), ") Z") {
				n, _ := strconv.Atoi(c)
				z = append(z, n)
			}
		}
	}
	return z
}

// hostPID finds the host PID of a process whose PID in the instance's
// namespace is nsPid (NSpid's second field).
func (in *Instance) hostPID(nsPid int) int {
	in.t.Helper()
	root := in.PID1()
	dirs, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(strings.TrimPrefix(l, "NSpid:"))
			if !strings.HasPrefix(l, "NSpid:") || len(f) < 2 || f[1] != strconv.Itoa(nsPid) {
				continue
			}
			// In this instance's PID namespace?
			host, _ := strconv.Atoi(f[0])
			a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", root))
			if b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", ancestorIn(host, root))); a == b {
				return host
			}
		}
	}
	in.t.Fatalf("no host pid for instance pid %d", nsPid)
	return 0
}

// ancestorIn walks up from pid until it reaches root (returns root) or pid 1.
func ancestorIn(pid, root int) int {
	for i := 0; i < 64 && pid > 1; i++ {
		if pid == root {
			return root
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		pid, _ = strconv.Atoi(f[1])
	}
	return 0
}

// Case 1: the poweroff signals power off; the rest is covered by
// TestSignalsNeverKillPID1 (HUP, QUIT, PIPE, WINCH and others live on; TERM
// and INT reboot; USR1 halts).
func TestPoweroffSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGUSR2, syscall.SIGPWR} {
		t.Run(sig.String(), func(t *testing.T) {
			in := NewInstance(t)
			in.AddPartition("a", "generic", sleeper)
			in.Boot()
			in.WaitState("a", partition.StateReady, 30*time.Second)
			if err := syscall.Kill(in.PID1(), sig); err != nil {
				t.Fatal(err)
			}
			if code := in.WaitExit(30 * time.Second); code != 0 {
				t.Fatalf("after %s the instance exited %d", sig, code)
			}
			if !strings.Contains(in.Log(), "shutdown: poweroff requested by signal") {
				t.Errorf("%s did not power off:\n%s", sig, in.Log())
			}
		})
	}
}

// Case 2: 1 000 double-forked orphans re-parented to PID 1 while 50
// concurrent start, stop and exec calls run: no zombie is left after a
// second, and no exit status is lost or wrong.
func TestOrphansDuringConcurrentCalls(t *testing.T) {
	in := NewInstance(t)
	// An init that exits 42 when asked to stop: a status no mistake makes up
	// (a stolen one reads 0, a signal landing before exec 2).
	for i := 0; i < 3; i++ {
		in.AddPartition(fmt.Sprintf("p%d", i), "generic", func(s *rspec.Spec) {
			s.Process.Args = []string{"/bin/busybox", "sh", "-c", `trap "exit 42" TERM; sleep 100000 & wait`}
		})
	}
	in.AddPartition("ex", "generic", sleeper)
	in.Boot()
	for _, n := range []string{"p0", "p1", "p2", "ex"} {
		in.WaitState(n, partition.StateReady, 30*time.Second)
	}
	pid1 := in.PID1()
	reapedBefore := in.info().Reaped

	// The orphan maker lives in the instance's PID namespace: each (true &)
	// subshell exits at once and leaves its child to PID 1.
	orphans := exec.Command("nsenter", "-t", strconv.Itoa(pid1), "-p", "--", "sh", "-c",
		"i=0; while [ $i -lt 1000 ]; do (true &); i=$((i+1)); done")
	if err := orphans.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 5 {
			case 0, 1, 2: // exec: the exit code must come back exactly
				code := (i * 7) % 100
				_, err := in.CLI("exec", "ex", "--", "sh", "-c", fmt.Sprintf("exit %d", code))
				want := fmt.Sprintf("exit status %d", code)
				if (code == 0 && err != nil) || (code != 0 && (err == nil || !strings.Contains(err.Error(), want))) {
					errs <- fmt.Errorf("exec exit %d came back as %v", code, err)
				}
			case 3:
				_, _ = in.CLI("stop", fmt.Sprintf("p%d", i%3))
			case 4:
				_, _ = in.CLI("start", fmt.Sprintf("p%d", i%3))
			}
		}()
	}
	wg.Wait()
	if err := orphans.Wait(); err != nil {
		t.Fatalf("orphan maker: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	time.Sleep(time.Second)
	if z := zombiesOf(pid1); len(z) > 0 {
		t.Errorf("%d zombies left under PID 1 a second later: %v", len(z), z)
	}
	if got := in.info().Reaped - reapedBefore; got < 1000 {
		t.Errorf("PID 1 reaped %d orphans, want ≥ 1000", got)
	}
	// Every stop left the init's own exit status, nothing else.
	for _, n := range []string{"p0", "p1", "p2"} {
		s := in.List()[n]
		if s.LastExit != "" && s.LastExit != "exited with status 42" {
			t.Errorf("%s: last exit %q, want exited with status 42", n, s.LastExit)
		}
		if s.State != partition.StateReady && s.State != partition.StateStopped {
			t.Errorf("%s left %s", n, s.State)
		}
	}
}

// Case 3: a panic in a control-connection handler is recovered and logged;
// PID 1 and the other connections live.
func TestPanicInHandlerIsRecovered(t *testing.T) {
	t.Setenv("METAINIT_TEST_FAULTS", "1")
	in := NewInstance(t)
	in.AddPartition("a", "generic", func(s *rspec.Spec) {
		s.Process.Args = []string{"/bin/busybox", "sh", "-c", `trap "exit 0" TERM; while :; do echo tick; sleep 0.2; done`}
		s.Process.Terminal = false
	})
	in.Boot()
	in.WaitState("a", partition.StateReady, 30*time.Second)
	sock := filepath.Join(in.RunDir, "control.sock")
	follow, resp, err := control.Open(sock, &control.Request{Verb: "logs", Name: "a", Follow: true})
	if err != nil || follow == nil {
		t.Fatalf("logs -f: %v %+v", err, resp)
	}
	defer follow.Close()
	pid := in.PID1()
	if resp, err := control.Call(sock, &control.Request{Verb: "debug-panic"}); err == nil {
		t.Fatalf("the panicking request got an answer: %+v", resp)
	}
	in.Eventually(5*time.Second, "the panic in the log", func() error {
		if !strings.Contains(in.Log(), "PANIC serving a request (recovered)") {
			return fmt.Errorf("not logged")
		}
		return nil
	})
	if in.PID1() != pid {
		t.Fatal("PID 1 changed")
	}
	in.MustCLI("list")
	// The other connection still streams.
	for i := 0; i < 3; i++ {
		if kind, data, _, err := follow.Next(); err != nil || kind != control.PacketOutput || !strings.Contains(string(data), "tick") {
			t.Fatalf("the logs -f connection died with the panic: %c %q %v", kind, data, err)
		}
	}
}

// Case 4: 500 start/stop cycles of one partition: PID 1's fds, goroutines
// and RSS come back to where they were.
func TestStartStopCyclesLeakNothing(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("a", "generic", sleeper)
	in.Boot()
	in.WaitState("a", partition.StateReady, 30*time.Second)
	sock := filepath.Join(in.RunDir, "control.sock")
	cycle := func() {
		for _, v := range []string{"stop", "start"} {
			if resp, err := control.Call(sock, &control.Request{Verb: v, Name: "a"}); err != nil || !resp.OK {
				t.Fatalf("%s: %v %+v", v, err, resp)
			}
		}
	}
	for i := 0; i < 20; i++ { // warm up: caches, GC, lazily started goroutines
		cycle()
	}
	time.Sleep(500 * time.Millisecond)
	before := in.info()
	begin := time.Now()
	for i := 0; i < 500; i++ {
		cycle()
	}
	took := time.Since(begin)
	var after control.Info
	in.Eventually(10*time.Second, "PID 1 back where it was", func() error {
		after = in.info()
		if after.FDs > before.FDs || after.Goroutines > before.Goroutines+2 || after.RSSKiB > before.RSSKiB+8*1024 {
			return fmt.Errorf("fds %d→%d, goroutines %d→%d, RSS %d→%d KiB", before.FDs, after.FDs,
				before.Goroutines, after.Goroutines, before.RSSKiB, after.RSSKiB)
		}
		return nil
	})
	t.Logf("500 start/stop cycles in %s (%.1f ms each): fds %d→%d, goroutines %d→%d, RSS %d→%d KiB",
		took.Round(time.Millisecond), float64(took.Milliseconds())/500, before.FDs, after.FDs,
		before.Goroutines, after.Goroutines, before.RSSKiB, after.RSSKiB)
	if s := in.List()["a"]; s.Restarts != 0 || s.State != partition.StateReady {
		t.Errorf("after the cycles: %s, restarts %d", s.State, s.Restarts)
	}
}

// Case 5: the file system holding the logs, the runtime state and a
// partition's rootfs fills up: PID 1 and the control socket keep working,
// starting a partition fails with a clear error, nothing written is lost,
// and it starts once there is room again.
func TestDiskFull(t *testing.T) {
	in := NewInstance(t)
	small := filepath.Join(in.dir, "small")
	if err := os.MkdirAll(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatal(err)
	}
	in.mounts = append([]string{in.mounts[0], small}, in.mounts[1:]...) // unmounted after the overlays
	in.RunDir = filepath.Join(small, "run")
	in.AddPartition("a", "generic", func(s *rspec.Spec) {
		s.Process.Args = []string{"/bin/busybox", "sh", "-c", `echo hello-before-full; trap "exit 0" TERM; sleep 100000 & wait`}
	})
	in.AddPartition("b", "generic", sleeper)
	in.Boot("--run-dir", in.RunDir)
	in.WaitState("a", partition.StateReady, 30*time.Second)
	in.WaitState("b", partition.StateReady, 30*time.Second)
	in.MustCLI("stop", "b")
	logFile := filepath.Join(in.RunDir, "log", "a.log")
	in.Eventually(5*time.Second, "a's line in its log file", func() error {
		if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "hello-before-full") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	filler := filepath.Join(small, "filler")
	_ = exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").Run() // until ENOSPC
	var st unix.Statfs_t
	if err := unix.Statfs(small, &st); err != nil || st.Bavail != 0 {
		t.Fatalf("the file system is not full: %d blocks free", st.Bavail)
	}
	in.MustCLI("list")
	_, err := in.CLI("start", "b")
	if err == nil || !strings.Contains(err.Error(), "partition b: start") || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("start on a full disk: %v", err)
	}
	in.MustCLI("status", "a")
	if _, err := in.Exec("a", "true"); err != nil {
		t.Errorf("exec on a full disk: %v", err)
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "hello-before-full") {
		t.Error("the log lost what was written before the disk filled")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	in.MustCLI("start", "b")
	in.WaitState("b", partition.StateReady, 30*time.Second)
}

// Case 6: kill -9 of a partition's init from the host: its processes are
// gone within a second, its state and restart policy follow, the others are
// untouched.
func TestKillNineFromHost(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("once", "runit", func(s *rspec.Spec) { s.Annotations["org.metainit.restart"] = "no" })
	in.AddPartition("again", "runit", func(s *rspec.Spec) { s.Annotations["org.metainit.restart-delay"] = "100ms" })
	in.AddPartition("other", "systemd", nil)
	in.Boot()
	for _, n := range []string{"once", "again", "other"} {
		in.WaitState(n, partition.StateReady, 60*time.Second)
	}
	other := in.List()["other"]
	victims := map[string]int{}
	for _, n := range []string{"once", "again"} {
		s := in.List()[n]
		host := in.hostPID(s.Pid)
		procs := cgroupProcs(t, in.cgroup, n)
		if len(procs) < 3 {
			t.Fatalf("%s: only %d processes in its cgroup before the kill", n, len(procs))
		}
		victims[n] = host
		if err := syscall.Kill(host, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	begin := time.Now()
	for n, host := range victims {
		for processExists(host) || len(cgroupProcs(t, in.cgroup, n)) > 0 && in.List()[n].State != partition.StateReady {
			if time.Since(begin) > time.Second {
				t.Fatalf("%s: processes left a second after kill -9: %v", n, cgroupProcs(t, in.cgroup, n))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := in.WaitState("once", partition.StateFailed, 5*time.Second)
	if st.LastExit != "killed by SIGKILL" {
		t.Errorf("once: last exit %q", st.LastExit)
	}
	st = in.WaitState("again", partition.StateReady, 30*time.Second)
	if st.Restarts != 1 || st.LastExit != "killed by SIGKILL" {
		t.Errorf("again: restarts %d, last exit %q", st.Restarts, st.LastExit)
	}
	if s := in.List()["other"]; s.Pid != other.Pid || s.State != partition.StateReady {
		t.Errorf("other disturbed: pid %d→%d, %s", other.Pid, s.Pid, s.State)
	}
}

// cgroupProcs lists the PIDs in a partition's cgroup (pids controller on a
// v1 or hybrid host, or the unified hierarchy).
func cgroupProcs(t *testing.T, parent, name string) []string {
	for _, dir := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup"} {
		b, err := os.ReadFile(filepath.Join(dir, parent, name, "cgroup.procs"))
		if err == nil {
			return strings.Fields(string(b))
		}
	}
	return nil
}

// Cases 7 and 8: a fork bomb under pids.max and a memory hog under
// memory.max stay inside their partitions: forks fail with EAGAIN inside
// only, the OOM killer acts inside that cgroup only (status reports it), the
// other partition and the host keep forking, and list answers in < 100ms.
func TestForkBombAndMemoryHogStayInside(t *testing.T) {
	in := NewInstance(t)
	pids := int64(64)
	mem := int64(48 << 20)
	in.AddPartition("bomb", "generic", func(s *rspec.Spec) {
		sleeper(s)
		s.Linux.Resources.Pids = &rspec.LinuxPids{Limit: &pids}
	})
	in.AddPartition("hog", "runit", func(s *rspec.Spec) { // runit's rootfs has perl
		s.Linux.Resources.Memory = &rspec.LinuxMemory{Limit: &mem}
	})
	in.AddPartition("calm", "runit", nil)
	in.Boot()
	for _, n := range []string{"bomb", "hog", "calm"} {
		in.WaitState(n, partition.StateReady, 60*time.Second)
	}
	calmPID := in.List()["calm"].Pid

	// The bomb: 200 sleepers forked as fast as possible, which pids.max stops.
	out, _ := in.Exec("bomb", "sh", "-c", `i=0; while [ $i -lt 200 ]; do sleep 300 </dev/null >/dev/null 2>&1 & i=$((i+1)); done 2>&1 | head -3; echo forked`)
	if !strings.Contains(out, "fork") && !strings.Contains(out, "Resource temporarily unavailable") && !strings.Contains(out, "can't fork") {
		t.Errorf("no fork failure inside the bomb partition: %q", out)
	}
	var st partition.Status
	_ = json.Unmarshal([]byte(in.MustCLI("status", "bomb", "--json")), &st)
	// At the limit (a few of the 64 were the exec'd shells, gone by now).
	if st.Usage == nil || st.Usage.Processes > uint64(pids) || st.Usage.Processes < uint64(pids)-8 {
		t.Errorf("bomb: processes %+v, want about %d (pids.max)", st.Usage, pids)
	}
	// The others and the host still fork.
	if out, err := in.Exec("calm", "sh", "-c", "i=0; while [ $i -lt 50 ]; do true & i=$((i+1)); done; wait; echo calm-forked"); err != nil || !strings.Contains(out, "calm-forked") {
		t.Errorf("the other partition cannot fork: %q %v", out, err)
	}
	if err := exec.Command("sh", "-c", "true & wait").Run(); err != nil {
		t.Errorf("the host cannot fork: %v", err)
	}
	for i := 0; i < 5; i++ {
		begin := time.Now()
		if _, err := control.Call(filepath.Join(in.RunDir, "control.sock"), &control.Request{Verb: "list"}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(begin); d > 100*time.Millisecond {
			t.Errorf("list took %s under a fork bomb", d)
		}
	}

	// The hog: a 256 MiB string under a 48 MiB memory.max.
	if out, err := in.Exec("hog", "perl", "-e", `$x = "x" x (256 << 20); print "survived\n"`); err == nil || strings.Contains(out, "survived") || !strings.Contains(err.Error(), "exit status 137") {
		t.Errorf("the hog was not killed: %q %v", out, err)
	}
	in.Eventually(10*time.Second, "status reports the OOM kill", func() error {
		var s partition.Status
		_ = json.Unmarshal([]byte(in.MustCLI("status", "hog", "--json")), &s)
		if s.Usage == nil || s.Usage.OOMKills == 0 {
			return fmt.Errorf("usage %+v", s.Usage)
		}
		return nil
	})
	if !strings.Contains(in.MustCLI("status", "hog"), "OOM kills:") {
		t.Error("status does not show the OOM kill")
	}
	for _, n := range []string{"hog", "bomb"} {
		if s := in.List()[n]; s.State != partition.StateReady {
			t.Errorf("%s: its init died too: %s %s", n, s.State, s.LastExit)
		}
	}
	if s := in.List()["calm"]; s.Pid != calmPID || s.State != partition.StateReady {
		t.Errorf("calm disturbed: %+v", s)
	}
}

// Case 10: every partition failing at once, of every kind: the rescue shell
// answers on the console, the control socket answers.
func TestEveryPartitionFails(t *testing.T) {
	in := NewInstance(t)
	for _, k := range fourInits {
		in.AddPartition(k, k, func(s *rspec.Spec) { s.Process.Args = []string{"/sbin/missing-" + k} })
	}
	in.WithConsole()
	in.Boot()
	for _, k := range fourInits {
		st := in.WaitState(k, partition.StateFailed, 10*time.Second)
		if !strings.Contains(st.Error, "missing-"+k) {
			t.Errorf("%s: %q", k, st.Error)
		}
	}
	if _, err := fmt.Fprintln(in.Stdin, "echo rescue-answers-$((7*6))"); err != nil {
		t.Fatal(err)
	}
	in.Eventually(10*time.Second, "rescue shell", func() error {
		if !strings.Contains(in.Log(), "rescue-answers-42") {
			return fmt.Errorf("no answer")
		}
		return nil
	})
	in.MustCLI("list")
}

// Case 19: control socket abuse. A non-root peer, garbage and oversized
// packets, unknown verbs, bad names and 1 000 connections at once get clean
// errors; PID 1 keeps no extra goroutine; root clients are served throughout.
func TestControlSocketAbuse(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("a", "generic", sleeper)
	in.Boot()
	in.WaitState("a", partition.StateReady, 30*time.Second)
	sock := filepath.Join(in.RunDir, "control.sock")
	before := in.info()

	nobody := func(args ...string) (int, string) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", in.bin}, args...)...)
		cmd.Env = []string{"METAINIT_SOCKET=" + sock}
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := nobody("list"); code != 1 || !strings.Contains(out, "permission denied") {
		t.Errorf("nobody, socket mode 0600: exit %d, %q", code, out)
	}
	// Past the file mode, the server's own SO_PEERCRED check.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{in.dir, filepath.Dir(sock)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	code, out := nobody("stop", "a")
	_ = os.Chmod(sock, 0o600)
	_ = os.Chmod(in.dir, 0o700)
	if code != 1 || !strings.Contains(out, "uid 65534 is not root") {
		t.Errorf("nobody past the file mode: exit %d, %q", code, out)
	}

	raw := func(pkt []byte) string {
		conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(pkt); err != nil {
			return "write: " + err.Error()
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1<<16)
		n, err := conn.Read(buf)
		if err != nil {
			return "read: " + err.Error()
		}
		return string(buf[:n])
	}
	for name, pkt := range map[string][]byte{
		"garbage":       {0, 0xff, 0xfe, 'x'},
		"not an object": []byte(`[1,2,3]`),
		"oversized":     append(append([]byte(`{"verb":"list","name":"`), make([]byte, 1<<20)...), `"}`...),
		"unknown verb":  []byte(`{"verb":"frobnicate","name":"a"}`),
		"climbing name": []byte(`{"verb":"stop","name":"../x"}`),
		"empty name":    []byte(`{"verb":"stop","name":""}`),
		"huge name":     []byte(`{"verb":"stop","name":"` + strings.Repeat("a", 10000) + `"}`),
		"no verb":       []byte(`{}`),
		"deep":          []byte(strings.Repeat("[", 100000) + strings.Repeat("]", 100000)),
	} {
		got := raw(pkt)
		if !strings.Contains(got, `"ok":false`) && !strings.HasPrefix(got, "write:") {
			t.Errorf("%s: answer %.200q", name, got)
		}
	}
	if s := in.List()["a"]; s.State != partition.StateReady {
		t.Errorf("abuse changed the partition: %s", s.State)
	}

	// 1 000 connections at once, while a root client keeps asking.
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered, refused := 0, 0
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := control.Call(sock, &control.Request{Verb: "list"})
			mu.Lock()
			defer mu.Unlock()
			if err == nil && resp.OK {
				answered++
			} else {
				refused++
			}
		}()
	}
	for i := 0; i < 10; i++ {
		in.MustCLI("status", "a")
	}
	wg.Wait()
	t.Logf("1000 concurrent connections: %d answered, %d refused cleanly", answered, refused)
	if answered < 900 {
		t.Errorf("only %d of 1000 concurrent clients answered", answered)
	}
	var after control.Info
	in.Eventually(10*time.Second, "goroutines back", func() error {
		after = in.info()
		if after.Goroutines > before.Goroutines+2 || after.FDs > before.FDs {
			return fmt.Errorf("goroutines %d→%d, fds %d→%d", before.Goroutines, after.Goroutines, before.FDs, after.FDs)
		}
		return nil
	})
}
