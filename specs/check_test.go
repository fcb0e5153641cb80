package specs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func bundle(t *testing.T, kind string, files map[string]string, links map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "p")
	for p, c := range files {
		full := filepath.Join(dir, "rootfs", p)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(dir, "rootfs", p)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Generate(Options{Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	if kind == "busybox" {
		s.Process.Args = []string{"/sbin/init"}
	}
	data, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fields(r *Report) string {
	var f []string
	for _, x := range r.Findings {
		f = append(f, string(x.Severity)+" "+x.Field)
	}
	return strings.Join(f, "; ")
}

// What metainit spec writes passes check; the inits' getty traps do not.
func TestCheckRootfsTraps(t *testing.T) {
	clean := bundle(t, "sysvinit", map[string]string{"/sbin/init": "/run/initctl", "/etc/inittab": "id:2:initdefault:\nco:2345:respawn:/sbin/getty -L console 115200 vt100\n"}, nil)
	if r := Check(clean); r.Failed() || len(r.Findings) != 0 {
		t.Errorf("a clean sysvinit bundle: %s", fields(r))
	}
	tty := bundle(t, "sysvinit", map[string]string{"/sbin/init": "/run/initctl", "/etc/inittab": "id:2:initdefault:\n# 1:2345:respawn:/sbin/getty 38400 tty1\n2:23:respawn:/sbin/getty 38400 tty2\n"}, nil)
	if r := Check(tty); !r.Failed() || !strings.Contains(fields(r), "rootfs/etc/inittab:3") {
		t.Errorf("a getty on tty2: %s", fields(r))
	}
	bb := bundle(t, "busybox", map[string]string{"/bin/busybox": "x"}, map[string]string{"/sbin/init": "/bin/busybox"})
	if r := Check(bb); !r.Failed() || !strings.Contains(fields(r), "rootfs/etc/inittab") {
		t.Errorf("busybox without inittab: %s", fields(r))
	}
	rn := bundle(t, "runit", map[string]string{"/lib/runit/runit-init": "x", "/etc/sv/getty-tty1/run": "x"},
		map[string]string{"/sbin/init": "/lib/runit/runit-init", "/etc/service/getty-tty1": "/etc/sv/getty-tty1"})
	if r := Check(rn); !r.Failed() || !strings.Contains(fields(r), "getty-tty1") {
		t.Errorf("runit with a tty getty: %s", fields(r))
	}
	broken := filepath.Join(t.TempDir(), "b")
	_ = os.MkdirAll(broken, 0o755)
	_ = os.WriteFile(filepath.Join(broken, "config.json"), []byte(`{"ociVersion": 1}`), 0o644)
	if r := Check(broken); !r.Failed() || !strings.Contains(r.Findings[0].Problem, "ociVersion") {
		t.Errorf("a JSON type error: %+v", r.Findings)
	}
}

func TestCheckDeniedDevice(t *testing.T) {
	dir := bundle(t, "sysvinit", map[string]string{"/sbin/init": "/run/initctl", "/etc/inittab": "id:2:initdefault:\n"}, nil)
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var s map[string]any
	_ = json.Unmarshal(b, &s)
	s["linux"].(map[string]any)["devices"] = []map[string]any{{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}}
	b, _ = json.Marshal(s)
	_ = os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	r := Check(dir)
	if !r.Failed() || !strings.Contains(fields(r), "linux.devices[0]") {
		t.Fatalf("a denied /dev/fuse: %s", fields(r))
	}
	if n, err := r.Fix(); err != nil || n != 1 {
		t.Fatalf("fix: %d %v", n, err)
	}
	if r := Check(dir); r.Failed() {
		t.Errorf("after fix: %s", fields(r))
	}
}
