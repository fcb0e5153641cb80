package partition

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// validSpec is the smallest spec LoadBundle accepts.
func validSpec() *rspec.Spec {
	return &rspec.Spec{
		Version: "1.2.0",
		Root:    &rspec.Root{Path: "rootfs"},
		Process: &rspec.Process{Args: []string{"/sbin/init"}, Cwd: "/"},
		Linux: &rspec.Linux{Namespaces: []rspec.LinuxNamespace{
			{Type: rspec.PIDNamespace}, {Type: rspec.MountNamespace},
		}},
	}
}

func writeBundle(t *testing.T, name string, spec any) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Join(dir, "rootfs/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs/sbin/init"), []byte("/run/initctl"), 0o755); err != nil {
		t.Fatal(err)
	}
	var data []byte
	switch s := spec.(type) {
	case string:
		data = []byte(s)
	case []byte:
		data = s
	default:
		var err error
		if data, err = json.Marshal(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadBundle(t *testing.T) {
	dir := writeBundle(t, "web", validSpec())
	b, err := LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "web" || b.Rootfs != filepath.Join(dir, "rootfs") || b.Settings.Kind != KindSysvinit || b.Init != "/sbin/init" {
		t.Errorf("bundle: %+v", b)
	}
}

func TestLoadBundleErrors(t *testing.T) {
	edit := func(f func(*rspec.Spec)) *rspec.Spec { s := validSpec(); f(s); return s }
	cases := map[string]struct {
		spec any
		want []string
	}{
		"syntax":       {`{"ociVersion": "1.2.0",`, []string{"line 1", "unexpected end of JSON input"}},
		"type":         {`{"ociVersion": "1.2.0", "process": {"args": "init"}}`, []string{"process.args", "line 1"}},
		"no version":   {edit(func(s *rspec.Spec) { s.Version = "" }), []string{"ociVersion"}},
		"bad version":  {edit(func(s *rspec.Spec) { s.Version = "banana" }), []string{"ociVersion", "banana"}},
		"no root":      {edit(func(s *rspec.Spec) { s.Root = nil }), []string{"root.path"}},
		"missing root": {edit(func(s *rspec.Spec) { s.Root.Path = "nope" }), []string{"root.path", "no such file"}},
		"no args":      {edit(func(s *rspec.Spec) { s.Process.Args = nil }), []string{"process.args"}},
		"missing init": {edit(func(s *rspec.Spec) { s.Process.Args = []string{"/sbin/nothere"} }), []string{"process.args[0]", "/sbin/nothere"}},
		"no linux":     {edit(func(s *rspec.Spec) { s.Linux = nil }), []string{"linux"}},
		"dup namespace": {edit(func(s *rspec.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, rspec.LinuxNamespace{Type: "pid"})
		}), []string{"linux.namespaces[2]", "twice"}},
		"no pidns":      {edit(func(s *rspec.Spec) { s.Linux.Namespaces = s.Linux.Namespaces[1:] }), []string{"linux.namespaces", "pid"}},
		"shared prop":   {edit(func(s *rspec.Spec) { s.Linux.RootfsPropagation = "rshared" }), []string{"linux.rootfsPropagation", "rshared"}},
		"relative dest": {edit(func(s *rspec.Spec) { s.Mounts = []rspec.Mount{{Destination: "tmp", Type: "tmpfs"}} }), []string{"mounts[0].destination"}},
		"annotation":    {edit(func(s *rspec.Spec) { s.Annotations = map[string]string{AnnOrder: "x"} }), []string{AnnOrder, `"x"`}},
		"not utf8":      {"{\"ociVersion\": \"\xff\xfe\"}", []string{"line 1, column 17: not valid UTF-8"}},
		"huge":          {`{"ociVersion": "` + strings.Repeat("a", maxConfigSize) + `"}`, []string{"larger than"}},
	}
	for name, c := range cases {
		dir := writeBundle(t, "p1", c.spec)
		_, err := LoadBundle(dir)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		msg := err.Error()
		for _, w := range append(c.want, "partition p1") {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q does not mention %q", name, msg, w)
			}
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"systemd", "web-1", "a.b_c", "X"} {
		if ValidName(ok) != nil {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "-x", strings.Repeat("a", 64), "a b", "é"} {
		if ValidName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCheckShape(t *testing.T) {
	for in, want := range map[string]string{
		`{"a": [{"b": 1}, {"b": 2}], "c": {"b": 3}}`:                            "",
		`{"a": [{"b": 1}, {"b": 2, "b": 3}]}`:                                   "field a[1].b: given twice",
		`{"a": {"b": {"c": 1}, "d": 2, "d": 3}}`:                                "field a.d: given twice",
		`{"a": 1, "a": 1}`:                                                      "field a: given twice",
		`{"x": {"org.x/y": 1, "org.x/y": 2}}`:                                   `field x["org.x/y"]: given twice`,
		`{"a": [], "b": [[], [1, {}]], "A": 1}`:                                 "", // case differs: two keys
		`{"a": [[1], [2], [3, [4, {"z": 1, "z": 2}]]]}`:                         "field a[2][1][1].z: given twice",
		`[` + strings.Repeat(`{"k":`, 31) + `1` + strings.Repeat(`}`, 31) + `]`: "",
		`[` + strings.Repeat(`{"k":`, 32) + `1` + strings.Repeat(`}`, 32) + `]`: "field [0]" + strings.Repeat(".k", 31) + ": nested deeper than 32 levels",
	} {
		err := checkShape([]byte(in))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%.60s: got %q, want %q", in, got, want)
		}
	}
}
