package tests

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// bootTwo boots the skeleton's pair: an unmodified systemd and an unmodified
// runit from `metainit spec` bundles, and waits until both are ready.
func bootTwo(t *testing.T) *Instance {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", nil)
	in.AddPartition("runit", "runit", nil)
	in.Boot()
	in.WaitState("systemd", partition.StateReady, 60*time.Second)
	in.WaitState("runit", partition.StateReady, 60*time.Second)
	return in
}

// Issue 2, done-when 1: side by side, each judged by its own tools.
func TestSystemdAndRunitSideBySide(t *testing.T) {
	in := bootTwo(t)

	// systemd is the judge of systemd.
	in.Eventually(60*time.Second, "systemctl is-system-running = running", func() error {
		out, err := in.Exec("systemd", "systemctl", "is-system-running")
		if out != "running" {
			failed, _ := in.Exec("systemd", "systemctl", "--failed", "--no-legend")
			return fmt.Errorf("is-system-running = %q (%v); failed units: %s", out, err, failed)
		}
		return nil
	})
	// runit's own sv says its services run.
	out, err := in.Exec("runit", "sh", "-c", "sv status /etc/service/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "run: ") {
			t.Errorf("runit service not running: %q", line)
		}
	}
	if !strings.Contains(out, "/etc/service/hello") {
		t.Errorf("sv status does not show the hello service: %q", out)
	}

	// Each init is PID 1 of its own namespace.
	for name, comm := range map[string]string{"systemd": "systemd", "runit": "runit"} {
		got, err := in.Exec(name, "cat", "/proc/1/comm")
		if err != nil || got != comm {
			t.Errorf("%s: /proc/1/comm = %q (%v), want %q", name, got, err, comm)
		}
	}

	// Neither sees the other's processes.
	seen := func(name string) string {
		out, err := in.Exec(name, "sh", "-c", "cat /proc/[0-9]*/comm")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if s := seen("systemd"); strings.Contains(s, "runsvdir") || strings.Contains(s, "runsv\n") {
		t.Errorf("systemd partition sees runit's processes:\n%s", s)
	}
	if s := seen("runit"); strings.Contains(s, "systemd") {
		t.Errorf("runit partition sees systemd's processes:\n%s", s)
	}

	// Both share the host's network namespace (no netns in the spec).
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	for _, name := range []string{"systemd", "runit"} {
		got, err := in.Exec(name, "readlink", "/proc/self/ns/net")
		if err != nil || got != hostNet {
			t.Errorf("%s: net ns %q (%v), host %q", name, got, err, hostNet)
		}
		pidns, _ := in.Exec(name, "readlink", "/proc/1/ns/pid")
		hostPid, _ := os.Readlink("/proc/self/ns/pid")
		if pidns == hostPid {
			t.Errorf("%s shares the host's PID namespace", name)
		}
	}

	// exec passes stdin, stdout and the exit code through.
	if _, err := in.CLI("exec", "runit", "--", "sh", "-c", "exit 7"); err == nil || !strings.Contains(err.Error(), "exit status 7") {
		t.Errorf("exit code not passed through: %v", err)
	}
}

// Issue 2, done-when 2: each partition is stopped, started, rebooted and
// powered off through its own init, and the other is untouched.
func TestLifecycleByOwnProtocol(t *testing.T) {
	in := bootTwo(t)
	systemdPID := in.List()["systemd"].Pid

	// runit: stage 3 through its stopit file, not SIGKILL.
	in.MustCLI("stop", "runit")
	st := in.List()["runit"]
	if st.State != partition.StateStopped || st.LastExit != "killed by SIGINT: poweroff" {
		t.Fatalf("runit after stop: %s, last exit %q, error %q", st.State, st.LastExit, st.Error)
	}
	if !strings.Contains(in.Log(), "partition runit: stopped by its own protocol") {
		t.Errorf("runit was not stopped by its own protocol:\n%s", in.Log())
	}
	in.MustCLI("start", "runit")
	in.WaitState("runit", partition.StateReady, 30*time.Second)

	// systemctl reboot inside restarts only that partition.
	runitPID := in.List()["runit"].Pid
	_, _ = in.Exec("systemd", "systemctl", "reboot")
	in.Eventually(30*time.Second, "systemd rebooted", func() error {
		s := in.List()["systemd"]
		if s.Restarts != 1 || s.State != partition.StateReady || s.Pid == systemdPID {
			return fmt.Errorf("systemd: %s, restarts %d, pid %d, last exit %q", s.State, s.Restarts, s.Pid, s.LastExit)
		}
		return nil
	})
	if s := in.List()["systemd"]; s.LastExit != "killed by SIGHUP: reboot" {
		t.Errorf("systemd last exit after reboot = %q", s.LastExit)
	}
	// systemctl poweroff inside leaves it stopped.
	_, _ = in.Exec("systemd", "systemctl", "poweroff")
	st = in.WaitState("systemd", partition.StateStopped, 30*time.Second)
	if st.LastExit != "killed by SIGINT: poweroff" {
		t.Errorf("systemd last exit after poweroff = %q", st.LastExit)
	}
	time.Sleep(time.Second) // a wrong restart would show by now
	if s := in.List()["systemd"]; s.State != partition.StateStopped {
		t.Errorf("systemd restarted after its own poweroff: %s", s.State)
	}
	if s := in.List()["runit"]; s.Pid != runitPID || s.State != partition.StateReady {
		t.Errorf("runit was disturbed: pid %d→%d, %s", runitPID, s.Pid, s.State)
	}
}

// Issue 2, done-when 3: metainit poweroff stops both through their
// protocols; the nested instance exits 0 and leaves nothing behind.
func TestPoweroffLeavesNothing(t *testing.T) {
	mountsBefore := countMounts(t)
	in := bootTwo(t)
	in.MustCLI("poweroff")
	if code := in.WaitExit(60 * time.Second); code != 0 {
		t.Fatalf("metainit boot --nested exited %d\n%s", code, in.Log())
	}
	log := in.Log()
	for _, name := range []string{"systemd", "runit"} {
		if !strings.Contains(log, "partition "+name+": stopped by its own protocol") {
			t.Errorf("%s not stopped by its own protocol:\n%s", name, log)
		}
	}
	if strings.Contains(log, "killed") && strings.Contains(log, "timed out") {
		t.Errorf("a partition had to be killed:\n%s", log)
	}
	if left := cgroupLeftovers(in.cgroup); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	if _, err := os.Stat(in.RunDir + "/control.sock"); err == nil {
		t.Errorf("control socket left behind")
	}
	// The only mounts left are the test's own: its shared test dir and the two
	// overlays (removed by cleanup).
	if n := countMounts(t); n != mountsBefore+3 {
		t.Errorf("host mounts: %d before, %d after (want +3: the test dir and 2 overlays)", mountsBefore, n)
	}
	if pid := in.runner.Process.Pid; processExists(pid) {
		t.Errorf("runner %d still exists", pid)
	}
}

// Issue 2, done-when 4: terminating signals never kill PID 1. Each does its
// documented action: SIGHUP, SIGQUIT, SIGPIPE (and the rest) nothing; SIGTERM
// and SIGINT reboot the instance (it comes back); SIGUSR1 halts it.
func TestSignalsNeverKillPID1(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("runit", "runit", nil)
	in.Boot()
	in.WaitState("runit", partition.StateReady, 30*time.Second)
	pid := in.PID1()
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE, syscall.SIGWINCH,
		syscall.SIGALRM, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGVTALRM, syscall.SIGXCPU, syscall.Signal(40)} {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := in.CLI("list"); err != nil || in.PID1() != pid {
			t.Fatalf("after %s: PID 1 gone or not answering: %v\n%s", sig, err, in.Log())
		}
	}
	if s := in.List()["runit"]; s.State != partition.StateReady {
		t.Errorf("runit disturbed by ignored signals: %s", s.State)
	}
	// SIGTERM and SIGINT: reboot — a new PID 1, partitions up again.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
		in.Eventually(60*time.Second, sig.String()+" reboots the instance", func() error {
			if processExists(pid) {
				return fmt.Errorf("old PID 1 %d still there", pid)
			}
			_, err := in.CLI("list")
			return err
		})
		in.WaitState("runit", partition.StateReady, 30*time.Second)
		pid = in.PID1()
	}
	if !strings.Contains(in.Log(), "instance rebooted") {
		t.Errorf("no reboot in the log:\n%s", in.Log())
	}
	// SIGUSR1: halt; the runner exits 0.
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if code := in.WaitExit(60 * time.Second); code != 0 {
		t.Errorf("after SIGUSR1 (halt) the runner exited %d", code)
	}
}

// Issue 2, done-when 5: bad partitions fail alone, with errors that name
// the partition, the file and the field.
func TestBadPartitionsFailAlone(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", nil)
	in.AddPartition("runit", "runit", nil)
	broken := in.AddPartition("broken", "runit", nil)
	if err := os.WriteFile(broken+"/config.json", []byte(`{"ociVersion": "1.2.0", "process": {"args": ["/sbin/init"`), 0o644); err != nil {
		t.Fatal(err)
	}
	in.AddPartition("norootfs", "runit", func(s *rspec.Spec) { s.Root.Path = "/nonexistent/rootfs" })
	in.AddPartition("badkind", "runit", func(s *rspec.Spec) { s.Annotations["org.metainit.init"] = "upstart" })
	in.Boot()
	in.WaitState("systemd", partition.StateReady, 60*time.Second)
	in.WaitState("runit", partition.StateReady, 60*time.Second)
	want := map[string][]string{
		"broken":   {"config.json", "unexpected end of JSON input"},
		"norootfs": {"config.json", "root.path", "/nonexistent/rootfs", "no such file"},
		"badkind":  {"config.json", `annotations["org.metainit.init"]`, `"upstart"`},
	}
	list := in.List()
	for name, parts := range want {
		s := list[name]
		if s.State != partition.StateFailed {
			t.Errorf("%s: state %s, want failed", name, s.State)
		}
		for _, p := range parts {
			if !strings.Contains(s.Error, p) {
				t.Errorf("%s: error %q does not mention %q", name, s.Error, p)
			}
		}
	}
	table := in.MustCLI("list")
	for _, name := range []string{"broken", "norootfs", "badkind"} {
		if !strings.Contains(table, name) {
			t.Errorf("list does not show %s:\n%s", name, table)
		}
	}
	t.Logf("metainit list:\n%s", table)
}

func countMounts(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func processExists(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is gone for our purposes only once reaped; report it as existing.
	return len(b) > 0
}
