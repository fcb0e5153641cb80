package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

var fourInits = []string{"systemd", "runit", "sysvinit", "busybox"}

// How each init is asked, from inside, to reboot and to power off: the
// init's own commands, unmodified.
var insideCommands = map[string][2][]string{
	"systemd":  {{"systemctl", "reboot"}, {"systemctl", "poweroff"}},
	"runit":    {{"init", "6"}, {"init", "0"}}, // runit-init, acting as telinit when not PID 1
	"sysvinit": {{"telinit", "6"}, {"telinit", "0"}},
	"busybox":  {{"busybox", "reboot"}, {"busybox", "poweroff"}},
}

// Issue 3, done-when 1: four inits at once, each stopped and started by its
// own protocol (no SIGKILL), and rebooting or powering off from inside as
// its annotations say (defaults: reboot restarts it, poweroff stops it).
func TestFourInitsTogether(t *testing.T) {
	in := NewInstance(t)
	for _, k := range fourInits {
		in.AddPartition(k, k, nil)
	}
	in.Boot()
	for _, k := range fourInits {
		in.WaitState(k, partition.StateReady, 60*time.Second)
	}
	t.Logf("metainit list:\n%s", in.MustCLI("list"))

	for _, k := range fourInits {
		begin := time.Now()
		in.MustCLI("stop", k)
		st := in.List()[k]
		if st.State != partition.StateStopped || st.LastExit != "killed by SIGINT: poweroff" || st.Error != "" {
			t.Errorf("%s after stop: %s, last exit %q, error %q", k, st.State, st.LastExit, st.Error)
		}
		t.Logf("%s stopped by its own protocol in %.2fs", k, time.Since(begin).Seconds())
		in.MustCLI("start", k)
		in.WaitState(k, partition.StateReady, 60*time.Second)
	}

	for _, k := range fourInits {
		before := in.List()[k]
		_, _ = in.Exec(k, insideCommands[k][0]...)
		in.Eventually(60*time.Second, k+" reboots itself", func() error {
			s := in.List()[k]
			if s.Restarts != before.Restarts+1 || s.State != partition.StateReady || s.LastExit != "killed by SIGHUP: reboot" {
				return fmt.Errorf("%s: %s, restarts %d, last exit %q", k, s.State, s.Restarts, s.LastExit)
			}
			return nil
		})
	}
	for _, k := range fourInits {
		_, _ = in.Exec(k, insideCommands[k][1]...)
		st := in.WaitState(k, partition.StateStopped, 60*time.Second)
		if st.LastExit != "killed by SIGINT: poweroff" {
			t.Errorf("%s powered itself off with %q", k, st.LastExit)
		}
	}
	log := in.Log()
	if strings.Contains(log, "timed out") || strings.Contains(log, "killing") {
		t.Errorf("a partition needed SIGKILL:\n%s", log)
	}
	for _, k := range fourInits {
		if n := strings.Count(log, "partition "+k+": stopped by its own protocol"); n != 1 {
			t.Errorf("%s: %d stops by its own protocol in the log, want 1", k, n)
		}
	}
}

// Issue 3, done-when 2: a primary partition powers off the whole machine;
// the others stop by their own protocols first; the instance exits 0.
func TestPrimaryPoweroffPowersOffMachine(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", func(s *rspec.Spec) {
		s.Annotations["org.metainit.on-poweroff"] = "poweroff-machine"
	})
	for _, k := range fourInits[1:] {
		in.AddPartition(k, k, nil)
	}
	in.Boot()
	for _, k := range fourInits {
		in.WaitState(k, partition.StateReady, 60*time.Second)
	}
	_, _ = in.Exec("systemd", "systemctl", "poweroff")
	if code := in.WaitExit(90 * time.Second); code != 0 {
		t.Fatalf("instance exited %d", code)
	}
	log := in.Log()
	if !strings.Contains(log, "shutdown: poweroff requested by partition systemd") {
		t.Errorf("the machine poweroff did not come from the systemd partition:\n%s", log)
	}
	for _, k := range fourInits[1:] {
		if !strings.Contains(log, "partition "+k+": stopped by its own protocol") {
			t.Errorf("%s was not stopped by its own protocol:\n%s", k, log)
		}
	}
}

// Issue 3, done-when 3: a crash loop marks the partition failed after the
// limit, the others keep running; start clears it.
func TestCrashLoopMarksFailed(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("runit", "runit", nil)
	in.AddPartition("crasher", "generic", func(s *rspec.Spec) {
		s.Process.Args = []string{"/bin/busybox", "sh", "-c", "sleep 0.2; exit 3"}
		s.Annotations["org.metainit.restart-delay"] = "100ms"
	})
	in.Boot()
	in.WaitState("runit", partition.StateReady, 60*time.Second)
	runitPID := in.List()["runit"].Pid
	st := in.WaitState("crasher", partition.StateFailed, 30*time.Second)
	if !strings.Contains(st.Error, "crash loop: 6 crashes") || st.LastExit != "exited with status 3" || st.Restarts != 5 {
		t.Errorf("crasher: error %q, last exit %q, restarts %d", st.Error, st.LastExit, st.Restarts)
	}
	time.Sleep(time.Second)
	if s := in.List()["crasher"]; s.State != partition.StateFailed {
		t.Errorf("a failed crash loop restarted: %s", s.State)
	}
	if s := in.List()["runit"]; s.State != partition.StateReady || s.Pid != runitPID {
		t.Errorf("runit disturbed: %s pid %d→%d", s.State, runitPID, s.Pid)
	}
	// The growing delay shows in the log: 100ms, 200ms, 400ms, 800ms, 1.6s.
	for _, d := range []string{"100ms", "200ms", "400ms", "800ms", "1.6s"} {
		if !strings.Contains(in.Log(), "restarting in "+d) {
			t.Errorf("no restart after %s in the log", d)
		}
	}
	in.MustCLI("reset-failed", "crasher")
	if s := in.List()["crasher"]; s.State != partition.StateStopped {
		t.Errorf("after reset-failed: %s", s.State)
	}
}

// Issue 3, done-when 4: a partition that ignores every stop request delays
// the machine's poweroff by no more than its stop timeout + 2 s.
func TestHungPartitionBoundsPoweroff(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("hung", "generic", func(s *rspec.Spec) {
		s.Process.Args = []string{"/bin/busybox", "sh", "-c", `trap "" TERM INT HUP USR1 USR2; while :; do sleep 1; done`}
		s.Annotations["org.metainit.stop-timeout"] = "3s"
	})
	in.AddPartition("busybox", "busybox", nil)
	in.Boot()
	in.WaitState("hung", partition.StateReady, 30*time.Second)
	in.WaitState("busybox", partition.StateReady, 30*time.Second)
	begin := time.Now()
	in.MustCLI("poweroff")
	if code := in.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("instance exited %d", code)
	}
	took := time.Since(begin)
	t.Logf("poweroff with a hung partition (stop timeout 3s) took %.2fs", took.Seconds())
	if took > 5*time.Second {
		t.Errorf("poweroff took %s, more than the 3s stop timeout + 2s", took)
	}
	if !strings.Contains(in.Log(), "partition hung: stop timed out after 3s, killed") {
		t.Errorf("the hung partition's kill is not in the log:\n%s", in.Log())
	}
}

// Issue 3, done-when 5: with every partition broken, a rescue shell answers
// on the console and the control socket answers; exiting the shell does not
// end PID 1.
func TestRescueShellWhenAllFail(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("broken", "runit", func(s *rspec.Spec) { s.Process.Args = []string{"/sbin/nothere"} })
	in.WithConsole()
	in.Boot()
	st := in.WaitState("broken", partition.StateFailed, 10*time.Second)
	if !strings.Contains(st.Error, "/sbin/nothere") {
		t.Errorf("error %q does not name the missing init", st.Error)
	}
	say := func(cmd, want string) {
		if _, err := fmt.Fprintln(in.Stdin, cmd); err != nil {
			t.Fatal(err)
		}
		in.Eventually(10*time.Second, "rescue shell answers "+want, func() error {
			if !strings.Contains(in.Log(), want) {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}
	in.Eventually(10*time.Second, "rescue shell started", func() error {
		if !strings.Contains(in.Log(), "rescue shell /bin/sh started") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	say("echo rescue-$((6*7))", "rescue-42")
	say("exit", "starting a new one")
	in.Eventually(10*time.Second, "second rescue shell", func() error {
		if strings.Count(in.Log(), "rescue shell /bin/sh started") < 2 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	say("echo again-$((6*8))", "again-48")
	in.MustCLI("list")
	in.MustCLI("poweroff")
	if code := in.WaitExit(30 * time.Second); code != 0 {
		t.Errorf("instance exited %d", code)
	}
}

// The kernel command line (--cmdline when nested): metainit.skip and
// metainit.rescue.
func TestCmdlineSelectsPartitions(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", nil)
	in.AddPartition("runit", "runit", nil)
	in.WithConsole()
	in.Boot("--cmdline", "quiet metainit.skip=runit metainit.rescue=1")
	in.WaitState("systemd", partition.StateReady, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	if s := in.List()["runit"]; s.State != partition.StateStopped {
		t.Errorf("runit skipped on the command line is %s", s.State)
	}
	if _, err := fmt.Fprintln(in.Stdin, "echo forced-$((5*5))"); err != nil {
		t.Fatal(err)
	}
	in.Eventually(10*time.Second, "metainit.rescue=1 gives a shell", func() error {
		if !strings.Contains(in.Log(), "forced-25") {
			return fmt.Errorf("no answer")
		}
		return nil
	})
}

// org.metainit.after: runit starts once systemd is ready; an unknown name and
// a cycle fail at load time, naming the annotation and the value.
func TestAfterOrdering(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", nil)
	in.AddPartition("runit", "runit", func(s *rspec.Spec) { s.Annotations["org.metainit.after"] = "systemd" })
	in.AddPartition("orphan", "busybox", func(s *rspec.Spec) { s.Annotations["org.metainit.after"] = "nosuch" })
	in.AddPartition("chicken", "busybox", func(s *rspec.Spec) { s.Annotations["org.metainit.after"] = "egg" })
	in.AddPartition("egg", "busybox", func(s *rspec.Spec) { s.Annotations["org.metainit.after"] = "chicken" })
	in.Boot()
	sd := in.WaitState("systemd", partition.StateReady, 60*time.Second)
	ru := in.WaitState("runit", partition.StateReady, 60*time.Second)
	readyAt := sd.Started.Add(time.Duration(sd.ReadyIn * float64(time.Second)))
	if ru.Started.Before(readyAt) {
		t.Errorf("runit started at %s, before systemd was ready at %s", ru.Started, readyAt)
	}
	list := in.List()
	if e := list["orphan"].Error; list["orphan"].State != partition.StateFailed || !strings.Contains(e, `annotations["org.metainit.after"]`) || !strings.Contains(e, `"nosuch"`) {
		t.Errorf("orphan: %s %q", list["orphan"].State, e)
	}
	for _, n := range []string{"chicken", "egg"} {
		if e := list[n].Error; list[n].State != partition.StateFailed || !strings.Contains(e, "dependency cycle") {
			t.Errorf("%s: %s %q", n, list[n].State, e)
		}
	}
}

// Issue 3, done-when 7: reload adds and removes partitions while the others
// keep running, and reports changed ones.
func TestReloadAddsAndRemoves(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("runit", "runit", nil)
	in.AddPartition("systemd", "systemd", nil)
	in.Boot()
	in.WaitState("runit", partition.StateReady, 60*time.Second)
	in.WaitState("systemd", partition.StateReady, 60*time.Second)
	systemdPID := in.List()["systemd"].Pid

	in.AddPartition("busybox", "busybox", nil)
	// A bundle whose name is not a partition name is ignored, not fatal.
	if err := os.Rename(filepath.Join(in.Parts, "runit"), filepath.Join(in.Parts, ".runit-off")); err != nil {
		t.Fatal(err)
	}
	out := in.MustCLI("reload")
	for _, want := range []string{"partition busybox: added", "partition runit: removed"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload said %q, want %q", out, want)
		}
	}
	in.WaitState("busybox", partition.StateReady, 30*time.Second)
	list := in.List()
	if _, ok := list["runit"]; ok {
		t.Errorf("runit still listed after its bundle went away")
	}
	if !strings.Contains(in.Log(), "partition runit: stopped by its own protocol") {
		t.Errorf("runit was not stopped by its own protocol")
	}
	if s := list["systemd"]; s.Pid != systemdPID || s.State != partition.StateReady {
		t.Errorf("systemd disturbed by reload: %s pid %d→%d", s.State, systemdPID, s.Pid)
	}

	// A changed config.json is reported; it applies at restart.
	cfg := filepath.Join(in.Parts, "busybox", "config.json")
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), `"org.metainit.stop-timeout": "30s"`, `"org.metainit.stop-timeout": "20s"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := in.MustCLI("reload"); !strings.Contains(out, "partition busybox: config.json changed") {
		t.Errorf("reload did not report the change: %q", out)
	}
	// SIGHUP reloads too.
	if err := os.Rename(filepath.Join(in.Parts, ".runit-off"), filepath.Join(in.Parts, "runit")); err != nil {
		t.Fatal(err)
	}
	pid := in.PID1()
	if err := syscallKill(pid, "HUP"); err != nil {
		t.Fatal(err)
	}
	in.WaitState("runit", partition.StateReady, 60*time.Second)
}

// A second request during shutdown upgrades a halt to a poweroff, or is
// ignored; it never starts the sequence again.
func TestSecondShutdownRequest(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("slow", "generic", func(s *rspec.Spec) {
		// Takes a second to stop, so the later requests land during shutdown.
		s.Process.Args = []string{"/bin/busybox", "sh", "-c", `trap "sleep 1; exit 0" TERM; sleep 100000 & wait`}
	})
	in.Boot()
	in.WaitState("slow", partition.StateReady, 30*time.Second)
	in.MustCLI("halt")
	time.Sleep(200 * time.Millisecond)
	in.MustCLI("poweroff")
	in.MustCLI("reboot")
	if code := in.WaitExit(30 * time.Second); code != 0 {
		t.Fatalf("instance exited %d", code)
	}
	log := in.Log()
	for _, want := range []string{"shutdown: halt requested", "shutdown: upgraded to poweroff", "poweroff already under way; reboot", "shutdown: poweroff\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "partition slow: stopping"); n != 1 {
		t.Errorf("the partition was asked to stop %d times by separate shutdowns", n)
	}
	if strings.Contains(log, "instance rebooted") {
		t.Error("the ignored reboot rebooted the instance")
	}
}
