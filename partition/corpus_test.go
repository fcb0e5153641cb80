package partition

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// invalidCorpus is testdata/invalid: each file is testdata/valid.json with
// one defect, and what LoadBundle's error must name: the field, or for a
// file that is not JSON, the line and column. Every file in the directory
// must be listed here, and every entry must have its file.
var invalidCorpus = map[string]string{
	"annotation-bad-stop-timeout.json":    `annotations["org.metainit.stop-timeout"]: "forever"`,
	"annotation-not-string.json":          "field annotations (line 25, column 28)",
	"annotation-unknown-init.json":        `annotations["org.metainit.init"]: "upstart"`,
	"annotation-unknown-key.json":         `annotations["org.metainit.restrat"]: unknown`,
	"bom.json":                            "line 1, column 2: invalid character",
	"deep-nested-object.json":             `field process["x-vendor"].a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a: nested deeper than 32 levels`,
	"deep-unknown-field.json":             `field ["x-vendor"][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested deeper`,
	"duplicate-annotation.json":           `field annotations["org.metainit.init"]: given twice`,
	"duplicate-key.json":                  "field process: given twice",
	"duplicate-nested-key.json":           "field process.args: given twice",
	"hostname-without-uts.json":           "field hostname: \"web\" needs a uts namespace",
	"linux-missing.json":                  "field linux: missing",
	"masked-path-relative.json":           "field linux.maskedPaths[0]: \"proc/kcore\" is not absolute",
	"mount-destination-empty.json":        "field mounts[1].destination",
	"mount-destination-relative.json":     "field mounts[0].destination: \"tmp\" is not absolute",
	"mounts-not-array.json":               "field mounts (line 16, column 14)",
	"namespaces-join-host-pid.json":       "field linux.namespaces[0].path: an init partition needs a new pid namespace",
	"namespaces-no-mount.json":            "field linux.namespaces: an init partition needs its own pid and mount namespaces",
	"namespaces-no-pid.json":              "field linux.namespaces: an init partition needs its own pid and mount namespaces",
	"namespaces-not-array.json":           "field linux.namespaces (line 27, column 20)",
	"namespaces-twice.json":               `field linux.namespaces[4]: namespace "pid" listed twice`,
	"namespaces-unknown.json":             `field linux.namespaces[4].type: unknown namespace "hostile"`,
	"not-utf8.json":                       "line 15, column 17: not valid UTF-8",
	"ociversion-garbage.json":             `field ociVersion: "1.0.0; rm -rf /"`,
	"ociversion-major-2.json":             `field ociVersion: "2.0.0"`,
	"ociversion-missing.json":             "field ociVersion: missing",
	"ociversion-newline.json":             `field ociVersion: "1.2.0\n"`,
	"ociversion-number.json":              "field ociVersion (line 2, column 20)",
	"process-args-empty.json":             "field process.args: missing",
	"process-args-nul.json":               "field process.args[1]: contains a NUL byte",
	"process-args-relative.json":          `field process.args[0]: init binary: "sbin/init" is not an absolute path`,
	"process-args-string.json":            "field process.args (line 7, column 25)",
	"process-cwd-proc-dotdot.json":        `field process.cwd: "/tmp/../proc/1/root" is under /proc`,
	"process-cwd-proc-self-fd.json":       `field process.cwd: "/proc/self/fd/7" is under /proc`,
	"process-cwd-relative.json":           `field process.cwd: "tmp" is not an absolute path`,
	"process-env-no-equals.json":          `field process.env[1]: "HOME" is not NAME=value`,
	"process-env-object.json":             "field process.env (line 11, column 13)",
	"process-missing.json":                "field process.args: missing",
	"process-oom-score-adj.json":          "field process.oomScoreAdj: -5000",
	"process-rlimit-soft-above-hard.json": "field process.rlimits[0].soft: 4096 is above the hard limit 1024",
	"process-rlimit-twice.json":           "field process.rlimits[1].type: RLIMIT_NOFILE listed twice",
	"process-rlimit-unknown.json":         `field process.rlimits[0].type: unknown rlimit "RLIMIT_EVERYTHING"`,
	"process-uid-negative.json":           "field process.user.uid (line 15, column 16)",
	"readonly-path-relative.json":         `field linux.readonlyPaths[1]: "proc/sysrq-trigger" is not absolute`,
	"root-missing.json":                   "field root.path: missing",
	"root-path-nonexistent.json":          "field root.path: rootfs /nonexistent/rootfs: no such file or directory",
	"root-path-number.json":               "field root.path (line 4, column 14)",
	"rootfs-propagation-garbage.json":     `field linux.rootfsPropagation: unknown propagation "everywhere"`,
	"syntax-single-quotes.json":           "line 4, column 14: invalid character",
	"syntax-trailing-comma.json":          "line 25, column 4: invalid character '}'",
	"syntax-trailing-data.json":           "line 43, column 2: invalid character '{' after top-level value",
	"syntax-truncated.json":               "line 26, column 3: unexpected end of JSON input",
	"sysctl-core-pattern.json":            "field linux.sysctl: kernel.core_pattern: no namespace of the partition confines it",
	"sysctl-ipc-without-ipcns.json":       "field linux.sysctl: kernel.shmmax: needs an ipc namespace",
	"sysctl-net-host-network.json":        "field linux.sysctl: net.ipv4.ip_forward: needs a network namespace",
	"sysctl-net-slashes.json":             "field linux.sysctl: net/ipv4/conf/all/forwarding: needs a network namespace",
	"top-level-array.json":                "field (top level) (line 1, column 2)",
	"top-level-null.json":                 "field ociVersion: missing",
	"uid-mappings-without-userns.json":    "field linux.uidMappings: given without a user namespace",
}

// Issue 7, case 17: a corpus of invalid config.json files, each refused with
// an error that names the partition, the file and the field.
func TestInvalidCorpus(t *testing.T) {
	valid, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBundle(writeBundle(t, "good", valid)); err != nil {
		t.Fatalf("testdata/valid.json, the corpus's base, is refused: %v", err)
	}
	files, err := filepath.Glob("testdata/invalid/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("%d files in testdata/invalid, want at least 30", len(files))
	}
	listed := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		listed[name] = true
		want, ok := invalidCorpus[name]
		if !ok {
			t.Errorf("%s: not in invalidCorpus", f)
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkRefused(t, name, data, want)
	}
	for name := range invalidCorpus {
		if !listed[name] {
			t.Errorf("invalidCorpus lists %s, which is not in testdata/invalid", name)
		}
	}
}

// Too large to keep in git, so made here: a file over the size limit, and
// nesting past encoding/json's own limit (10000) and just past metainit's.
func TestInvalidGenerated(t *testing.T) {
	valid, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	withField := func(v string) []byte {
		return []byte(strings.Replace(string(valid), "{", `{"x-vendor": `+v+",", 1))
	}
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	checkRefused(t, "huge", withField(`"`+strings.Repeat("a", maxConfigSize)+`"`), "larger than 1048576 bytes")
	checkRefused(t, "depth 10001", withField(nest(10001)), "line 1, column 10014: invalid character '[' exceeded max depth")
	checkRefused(t, "depth 33", withField(nest(32)), `field ["x-vendor"]`+strings.Repeat("[0]", 31)+": nested deeper than 32 levels")
	// The top-level object and 31 arrays: exactly the limit.
	if _, err := LoadBundle(writeBundle(t, "good", withField(nest(31)))); err != nil {
		t.Errorf("depth 32 refused: %v", err)
	}
}

func checkRefused(t *testing.T, name string, data []byte, want string) {
	t.Helper()
	b, err := LoadBundle(writeBundle(t, "p1", data))
	if err == nil {
		t.Errorf("%s: accepted (kind %s)", name, b.Settings.Kind)
		return
	}
	msg := err.Error()
	for _, w := range []string{"partition p1", "config.json", want} {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not mention %q", name, msg, w)
		}
	}
}
