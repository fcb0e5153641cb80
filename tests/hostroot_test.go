package tests

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// Issue 3, done-when 6, the seed's own scenario: one system with systemd and
// runit both installed; metainit boots from it and runs each init as a
// partition rooted at the machine's own /. Both see the same /etc, /usr and
// /var; each has its own /run, /tmp, /proc, cgroup and PID namespace.
func TestTwoInitsShareTheHostRoot(t *testing.T) {
	in := NewInstance(t)
	root := in.UseRoot("dual")
	in.WriteSpec("systemd", "systemd", func(s *rspec.Spec) { s.Root.Path = "/" })
	in.WriteSpec("runit", "runit", func(s *rspec.Spec) {
		s.Root.Path = "/"
		s.Process.Args = []string{"/sbin/runit"} // /sbin/init is systemd's on this system
	})
	in.Boot()
	in.WaitState("systemd", partition.StateReady, 60*time.Second)
	in.WaitState("runit", partition.StateReady, 60*time.Second)
	in.Eventually(60*time.Second, "systemd running", func() error {
		out, err := in.Exec("systemd", "systemctl", "is-system-running")
		if out != "running" {
			failed, _ := in.Exec("systemd", "systemctl", "--failed", "--no-legend")
			return &errString{"is-system-running = " + out + " " + errText(err) + "; failed: " + failed}
		}
		return nil
	})

	// The same /etc, /usr and /var: what one writes the other reads, and the
	// machine's root has it too.
	mustExec := func(name string, cmd ...string) string {
		out, err := in.Exec(name, cmd...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	mustExec("systemd", "sh", "-c", "echo from-systemd > /var/tmp/shared && echo etc-too > /etc/metainit-shared")
	if got := mustExec("runit", "cat", "/var/tmp/shared", "/etc/metainit-shared"); got != "from-systemd\netc-too" {
		t.Errorf("runit reads %q from the shared /var and /etc", got)
	}
	if b, err := os.ReadFile(filepath.Join(root, "var/tmp/shared")); err != nil || string(b) != "from-systemd\n" {
		t.Errorf("the machine's root lacks the file: %q %v", b, err)
	}
	if a, b := mustExec("systemd", "sh", "-c", "ls /usr/bin | md5sum"), mustExec("runit", "sh", "-c", "ls /usr/bin | md5sum"); a != b {
		t.Errorf("/usr differs: %s vs %s", a, b)
	}
	// Private /run and /tmp.
	mustExec("systemd", "sh", "-c", "touch /run/only-systemd /tmp/only-systemd")
	if out, _ := in.Exec("runit", "sh", "-c", "ls /run/only-systemd /tmp/only-systemd 2>&1 | wc -l; test -e /run/only-systemd || test -e /tmp/only-systemd || echo private"); out != "2\nprivate" {
		t.Errorf("runit sees systemd's /run or /tmp: %q", out)
	}
	// Each is PID 1 of its own namespace, on the same files.
	if c := mustExec("runit", "cat", "/proc/1/comm"); c != "runit" {
		t.Errorf("runit partition's PID 1 is %q", c)
	}
	if c := mustExec("systemd", "cat", "/proc/1/comm"); c != "systemd" {
		t.Errorf("systemd partition's PID 1 is %q", c)
	}
	out := mustExec("runit", "sh", "-c", "sv status /etc/service/hello")
	if len(out) < 4 || out[:4] != "run:" {
		t.Errorf("runit's hello service: %q", out)
	}
	in.MustCLI("poweroff")
	if code := in.WaitExit(60 * time.Second); code != 0 {
		t.Errorf("instance exited %d", code)
	}
}

type errString struct{ s string }

func (e *errString) Error() string { return e.s }

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
