package partition

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// FuzzLoadBundle feeds LoadBundle arbitrary config.json bytes, and the valid
// config with an arbitrary annotation added. It must never panic; what it
// refuses it refuses with an error naming the partition; what it accepts
// satisfies everything metainit relies on at start, and loads the same
// again once re-encoded (validation depends on the spec, not on how its JSON
// was spelled). Seeds: testdata/fuzz/FuzzLoadBundle, testdata/valid.json
// and the invalid corpus. `make fuzz` runs it for 30s.
func FuzzLoadBundle(f *testing.F) {
	valid, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, AnnOrder, "10")
	for _, file := range corpusFiles(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "", "")
	}
	dir := filepath.Join(f.TempDir(), "fz")
	if err := os.MkdirAll(filepath.Join(dir, "rootfs/sbin"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs/sbin/init"), []byte("/run/initctl"), 0o755); err != nil {
		f.Fatal(err)
	}
	var base map[string]any
	if err := json.Unmarshal(valid, &base); err != nil {
		f.Fatal(err)
	}
	load := func(t *testing.T, data []byte) (*Bundle, error) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return LoadBundle(dir)
	}
	check := func(t *testing.T, data []byte) {
		b, err := load(t, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "partition fz: ") {
				t.Errorf("error does not name the partition: %v", err)
			}
			return
		}
		s := b.Spec
		switch {
		case s == nil || s.Process == nil || len(s.Process.Args) == 0 || s.Linux == nil:
			t.Fatalf("accepted without process.args or linux: %s", data)
		case !versionRE.MatchString(s.Version):
			t.Errorf("accepted ociVersion %q", s.Version)
		case !filepath.IsAbs(b.Rootfs) || b.Init == "" || !filepath.IsAbs(b.Init):
			t.Errorf("accepted rootfs %q, init %q", b.Rootfs, b.Init)
		case checkCwd(s.Process.Cwd) != nil:
			t.Errorf("accepted process.cwd %q", s.Process.Cwd)
		case b.Settings.StopTimeout <= 0 || b.Settings.ReadyTimeout <= 0:
			t.Errorf("accepted settings %+v", b.Settings)
		}
		if _, err := ParseKind(string(b.Settings.Kind)); err != nil {
			t.Errorf("accepted kind %q", b.Settings.Kind)
		}
		own := map[string]bool{}
		for _, ns := range s.Linux.Namespaces {
			own[string(ns.Type)] = ns.Path == ""
		}
		if !own["pid"] || !own["mount"] {
			t.Errorf("accepted without its own pid and mount namespaces: %+v", s.Linux.Namespaces)
		}
		for i, m := range s.Mounts {
			if !filepath.IsAbs(m.Destination) {
				t.Errorf("accepted mounts[%d].destination %q", i, m.Destination)
			}
		}
		// Re-encoded, the same spec loads to the same settings.
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := load(t, again)
		if err != nil {
			t.Fatalf("accepted, but refused once re-encoded: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(b.Settings, b2.Settings) || b.Init != b2.Init {
			t.Errorf("re-encoded: settings %+v, init %q; were %+v, %q", b2.Settings, b2.Init, b.Settings, b.Init)
		}
	}
	f.Fuzz(func(t *testing.T, config []byte, key, value string) {
		check(t, config)
		// The valid config with one annotation more.
		ann := map[string]any{key: value}
		for k, v := range base["annotations"].(map[string]any) {
			if k != key {
				ann[k] = v
			}
		}
		s := map[string]any{}
		for k, v := range base {
			s[k] = v
		}
		s["annotations"] = ann
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		check(t, data)
	})
}

// corpusFiles lists testdata/invalid, sorted for a stable seed order.
func corpusFiles(t testing.TB) []string {
	files, err := filepath.Glob("testdata/invalid/*.json")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}
