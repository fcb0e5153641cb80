package specs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// Where `runc spec` fails an init, this spec must not.
func TestGenerateBootsAnInit(t *testing.T) {
	for _, kind := range partition.Kinds() {
		s, err := Generate(Options{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		if s.Annotations[partition.AnnInit] != kind {
			t.Errorf("%s: init annotation %q", kind, s.Annotations[partition.AnnInit])
		}
		caps := s.Process.Capabilities
		for _, c := range []string{"CAP_DAC_READ_SEARCH", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_TIME"} {
			if slices.Contains(caps.Bounding, c) {
				t.Errorf("%s: grants %s", kind, c)
			}
		}
		for _, c := range []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT"} {
			if !slices.Contains(caps.Bounding, c) || !slices.Contains(caps.Effective, c) {
				t.Errorf("%s: lacks %s", kind, c)
			}
		}
		if s.Process.NoNewPrivileges || !s.Process.Terminal {
			t.Errorf("%s: NoNewPrivileges %v, terminal %v", kind, s.Process.NoNewPrivileges, s.Process.Terminal)
		}
		ns := map[rspec.LinuxNamespaceType]bool{}
		for _, n := range s.Linux.Namespaces {
			ns[n.Type] = true
		}
		if !ns["pid"] || !ns["mount"] || !ns["cgroup"] || !ns["uts"] || !ns["ipc"] || ns["network"] {
			t.Errorf("%s: namespaces %v (want pid mount cgroup uts ipc, host network)", kind, ns)
		}
		mounts := map[string]rspec.Mount{}
		for _, m := range s.Mounts {
			mounts[m.Destination] = m
		}
		if cg := mounts["/sys/fs/cgroup"]; slices.Contains(cg.Options, "ro") || !slices.Contains(cg.Options, "rw") {
			t.Errorf("%s: cgroup mount %v is not writable", kind, cg.Options)
		}
		if !slices.Contains(mounts["/sys"].Options, "ro") {
			t.Errorf("%s: /sys is writable", kind)
		}
		for _, d := range []string{"/run", "/run/lock", "/tmp", "/dev", "/dev/pts", "/proc"} {
			if _, ok := mounts[d]; !ok {
				t.Errorf("%s: no %s mount", kind, d)
			}
		}
		if !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
			t.Errorf("%s: /proc/sys writable", kind)
		}
	}
	if _, err := Generate(Options{Kind: "upstart"}); err == nil {
		t.Error("unknown kind accepted")
	}
}

// What Generate writes, LoadBundle reads, and auto detection agrees.
func TestGeneratedSpecLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sys")
	if err := os.MkdirAll(filepath.Join(dir, "rootfs/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "rootfs/lib/systemd/systemd"), []byte("ELF"), 0o755)
	_ = os.MkdirAll(filepath.Join(dir, "rootfs/sbin"), 0o755)
	_ = os.Symlink("/lib/systemd/systemd", filepath.Join(dir, "rootfs/sbin/init"))
	s, err := Generate(Options{Kind: "auto", BundleDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := partition.LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Settings.Kind != partition.KindSystemd {
		t.Errorf("kind %s, want systemd", b.Settings.Kind)
	}
}
