package partition

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeRoot builds a tree: files maps paths to contents, links to targets.
func fakeRoot(t *testing.T, files map[string]string, links map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetectKind(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		links map[string]string
		want  Kind
		path  string
	}{
		{"systemd via absolute link", map[string]string{"/lib/systemd/systemd": "ELF"}, map[string]string{"/sbin/init": "/lib/systemd/systemd"}, KindSystemd, "/lib/systemd/systemd"},
		{"merged /usr", map[string]string{"/usr/lib/systemd/systemd": "ELF"}, map[string]string{"/lib": "usr/lib", "/sbin/init": "/lib/systemd/systemd"}, KindSystemd, "/usr/lib/systemd/systemd"},
		{"runit-init", map[string]string{"/lib/runit/runit-init": "ELF"}, map[string]string{"/sbin/init": "../lib/runit/runit-init"}, KindRunit, "/lib/runit/runit-init"},
		{"busybox", map[string]string{"/bin/busybox": "ELF"}, map[string]string{"/sbin/init": "/bin/busybox"}, KindBusybox, "/bin/busybox"},
		{"sysvinit", map[string]string{"/sbin/init": "ELF ... /run/initctl ..."}, nil, KindSysvinit, "/sbin/init"},
		{"something else", map[string]string{"/usr/bin/tini": "ELF"}, map[string]string{"/sbin/init": "/usr/bin/tini"}, KindGeneric, "/usr/bin/tini"},
	}
	for _, c := range cases {
		root := fakeRoot(t, c.files, c.links)
		k, p, err := DetectKind(root, "/sbin/init")
		if err != nil || k != c.want || p != c.path {
			t.Errorf("%s: got %s %s %v; want %s %s", c.name, k, p, err, c.want, c.path)
		}
	}
}

// A hostile rootfs cannot make detection look at the host: links resolve
// inside the rootfs, .. stops at its root.
func TestDetectKindStaysInsideRootfs(t *testing.T) {
	root := fakeRoot(t, map[string]string{"/bin/true": "x"}, map[string]string{
		"/sbin/init":  "../../../../../../usr/lib/systemd/systemd",
		"/sbin/loop":  "/sbin/loop2",
		"/sbin/loop2": "/sbin/loop",
	})
	if _, _, err := DetectKind(root, "/sbin/init"); err == nil {
		t.Error("a link climbing out of the rootfs found a file (the host's systemd?)")
	}
	if _, _, err := DetectKind(root, "/sbin/loop"); err == nil {
		t.Error("a symlink loop was accepted")
	}
	if _, _, err := DetectKind(root, "/sbin/missing"); err == nil {
		t.Error("a missing init was accepted")
	}
	if _, _, err := DetectKind(root, "sbin/init"); err == nil {
		t.Error("a relative init path was accepted")
	}
}
