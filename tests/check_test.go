package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metainit/metainit/partition"
)

// Issue 4, done-when 3: a bundle made by `runc spec`, with only root.path and
// process.args edited, gets findings from metainit check; once they are
// applied (check --fix) the bundle boots systemd to running.
func TestCheckFixesRuncSpec(t *testing.T) {
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is needed for its `runc spec` (apt-get install runc; .ci/run installs it)")
	}
	in := NewInstance(t)
	bdir := filepath.Join(in.Parts, "web")
	in.overlay("web", rootfs(t, "systemd"), filepath.Join(bdir, "rootfs"))
	cmd := exec.Command("runc", "spec")
	cmd.Dir = bdir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v %s", err, out)
	}
	var s map[string]any
	b, _ := os.ReadFile(filepath.Join(bdir, "config.json"))
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	s["process"].(map[string]any)["args"] = []string{"/sbin/init"}
	s["root"].(map[string]any)["path"] = "rootfs" // as runc spec wrote it, relative
	b, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(filepath.Join(bdir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	check := func(args ...string) (int, string) {
		c := exec.Command(in.bin, append([]string{"check"}, args...)...)
		out, _ := c.CombinedOutput()
		return c.ProcessState.ExitCode(), string(out)
	}
	code, out := check(bdir)
	t.Logf("metainit check on a runc spec bundle:\n%s", out)
	if code != 1 {
		t.Errorf("check exited %d on a bundle that cannot boot an init", code)
	}
	for _, want := range []string{"root.readonly", "process.noNewPrivileges", "process.capabilities", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "read-only", "fix:"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q", want)
		}
	}
	if code, out = check("--fix", bdir); code != 0 {
		t.Fatalf("check --fix left errors (exit %d):\n%s", code, out)
	}
	t.Logf("after --fix:\n%s", out)
	in.Boot()
	in.WaitState("web", partition.StateReady, 60*time.Second)
	in.Eventually(60*time.Second, "systemctl is-system-running = running", func() error {
		got, err := in.Exec("web", "systemctl", "is-system-running")
		if got != "running" {
			failed, _ := in.Exec("web", "systemctl", "--failed", "--no-legend")
			return fmt.Errorf("%q %v; failed: %s", got, err, failed)
		}
		return nil
	})
}
