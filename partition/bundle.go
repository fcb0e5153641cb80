package partition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A Bundle is an OCI runtime bundle as found in the partitions directory:
// <dir>/<name>/config.json and the root filesystem it names.
type Bundle struct {
	Name     string
	Dir      string // absolute
	Rootfs   string // absolute, resolved against Dir
	Spec     *specs.Spec
	Settings Settings
	// Init is process.args[0] resolved inside the rootfs.
	Init string
}

func (b *Bundle) String() string { return "partition " + b.Name }

// maxConfigSize bounds config.json: a real one is a few KiB, and PID 1 must
// not read a hostile multi-gigabyte file into memory.
const maxConfigSize = 1 << 20

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidName reports whether name can name a partition: it becomes a cgroup,
// a libcontainer id and a file name, so it is kept to a safe alphabet.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid partition name %q (want 1-63 of A-Z a-z 0-9 _ . -, not starting with . _ or -)", name)
	}
	return nil
}

// LoadBundle reads and checks <dir>. Every error names the file and the field.
func LoadBundle(dir string) (*Bundle, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Name: filepath.Base(dir), Dir: dir}
	if err := ValidName(b.Name); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "config.json")
	spec, err := readSpec(file)
	if err != nil {
		return b, fmt.Errorf("%s: %w", b, err)
	}
	b.Spec = spec
	if err := b.check(); err != nil {
		return b, fmt.Errorf("%s: %s: %w", b, file, err)
	}
	return b, nil
}

func readSpec(file string) (*specs.Spec, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, maxConfigSize)
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, size := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			off += size
		}
		line, col := position(data, int64(off))
		return nil, fmt.Errorf("%s: line %d, column %d: not valid UTF-8", file, line, col)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", file, describeJSONError(data, err))
	}
	if err := checkShape(data); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &spec, nil
}

// maxDepth bounds how deeply config.json nests. A real one nests 7 levels
// (linux.seccomp.syscalls[i].args[j]); encoding/json alone allows 10000, and
// ignores unknown fields however deep, so a hostile file could hide anything.
const maxDepth = 32

// checkShape refuses what encoding/json silently accepts: nesting deeper than
// maxDepth, and a key given twice in one object (encoding/json keeps the last
// value, another reader of the same file may keep the first: the file would
// not say one thing). Errors name the field.
func checkShape(data []byte) error {
	type level struct {
		array bool
		index int             // arrays: the element being read
		key   string          // objects: the member being read
		keys  map[string]bool // objects: the keys seen
	}
	var stack []*level
	// field names the value being read; with member set, that member of the
	// innermost object instead.
	field := func(member string) string {
		var b strings.Builder
		for i, l := range stack {
			switch {
			case l.array:
				fmt.Fprintf(&b, "[%d]", l.index)
			case i < len(stack)-1 || member == "":
				b.WriteString(fieldName(b.Len() == 0, l.key))
			}
		}
		if member != "" {
			b.WriteString(fieldName(b.Len() == 0, member))
		}
		if b.Len() == 0 {
			return "(top level)"
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	expectKey := false
	// valueDone moves past a complete value: to the next element of an
	// array, or to the next key of an object.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.array {
			top.index++
		} else {
			expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err // not reached: json.Unmarshal accepted the same bytes
		}
		d, isDelim := tok.(json.Delim)
		switch {
		case expectKey && isDelim: // '}'
			stack = stack[:len(stack)-1]
			expectKey = false
			valueDone()
		case expectKey:
			top, key := stack[len(stack)-1], tok.(string)
			if top.keys[key] {
				return fmt.Errorf("field %s: given twice", field(key))
			}
			top.keys[key], top.key, expectKey = true, key, false
		case isDelim && (d == '{' || d == '['):
			if len(stack) == maxDepth {
				return fmt.Errorf("field %s: nested deeper than %d levels", field(""), maxDepth)
			}
			l := &level{array: d == '['}
			if !l.array {
				l.keys = map[string]bool{}
			}
			stack = append(stack, l)
			expectKey = !l.array
		case isDelim: // ']'
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// fieldName writes a key the way errors name fields: process.args, and
// annotations["org.metainit.init"] for keys that are not plain names.
func fieldName(first bool, key string) string {
	plain := key != ""
	for _, r := range key {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return "[" + strconv.Quote(key) + "]"
	case first:
		return key
	}
	return "." + key
}

// describeJSONError turns encoding/json's errors into ones that say where.
func describeJSONError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return fmt.Errorf("line %d, column %d: %v", line, col, syn)
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("field %s (line %d, column %d): a JSON %s cannot be %s", field, line, col, typ.Value, typ.Type)
	}
	return err
}

func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line = 1 + strings.Count(string(data[:off]), "\n")
	col = int(off) - strings.LastIndex(string(data[:off]), "\n")
	return line, col
}

// versionRE is a 1.x semantic version, as ociVersion must be.
var versionRE = regexp.MustCompile(`^1\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})(-[0-9A-Za-z.-]{1,64})?(\+[0-9A-Za-z.-]{1,64})?$`)

var knownNamespaces = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true, specs.IPCNamespace: true,
	specs.UTSNamespace: true, specs.UserNamespace: true, specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

// checkProcess validates process beyond what encoding/json checks.
func checkProcess(p *specs.Process) error {
	for i, a := range p.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("field process.args[%d]: contains a NUL byte", i)
		}
	}
	if err := checkCwd(p.Cwd); err != nil {
		return fmt.Errorf("field process.cwd: %w", err)
	}
	for i, e := range p.Env {
		name, _, ok := strings.Cut(e, "=")
		if !ok || name == "" || strings.IndexByte(e, 0) >= 0 {
			return fmt.Errorf("field process.env[%d]: %q is not NAME=value", i, e)
		}
	}
	seen := map[string]bool{}
	for i, r := range p.Rlimits {
		if _, ok := rlimits[r.Type]; !ok {
			return fmt.Errorf("field process.rlimits[%d].type: unknown rlimit %q", i, r.Type)
		}
		if seen[r.Type] {
			return fmt.Errorf("field process.rlimits[%d].type: %s listed twice", i, r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return fmt.Errorf("field process.rlimits[%d].soft: %d is above the hard limit %d", i, r.Soft, r.Hard)
		}
	}
	if a := p.OOMScoreAdj; a != nil && (*a < -1000 || *a > 1000) {
		return fmt.Errorf("field process.oomScoreAdj: %d is outside -1000..1000", *a)
	}
	return nil
}

// checkCwd refuses a working directory that is not absolute or lies under
// /proc. There it can only be a trick: /proc/self/fd/N is whatever
// libcontainer's init process has open as fd N when it changes directory,
// and CVE-2024-21626 reached the host's cgroupfs that way. The empty cwd
// means /.
func checkCwd(cwd string) error {
	if cwd == "" {
		return nil
	}
	if !path.IsAbs(cwd) {
		return fmt.Errorf("%q is not an absolute path", cwd)
	}
	if c := path.Clean(cwd); c == "/proc" || strings.HasPrefix(c, "/proc/") {
		return fmt.Errorf("%q is under /proc (a process's view of its own files, not a directory of the partition)", cwd)
	}
	return nil
}

// checkLinux validates the linux section against the namespaces the
// partition has (ns). libcontainer refuses most of these too, but only at
// start and without naming the field.
func checkLinux(s *specs.Spec, ns map[specs.LinuxNamespaceType]bool) error {
	l := s.Linux
	if !ns[specs.UTSNamespace] {
		if s.Hostname != "" {
			return fmt.Errorf("field hostname: %q needs a uts namespace (it would rename the machine)", s.Hostname)
		}
		if s.Domainname != "" {
			return fmt.Errorf("field domainname: %q needs a uts namespace (it would rename the machine's domain)", s.Domainname)
		}
	}
	if !ns[specs.UserNamespace] {
		if len(l.UIDMappings) > 0 {
			return errors.New("field linux.uidMappings: given without a user namespace")
		}
		if len(l.GIDMappings) > 0 {
			return errors.New("field linux.gidMappings: given without a user namespace")
		}
	}
	for _, k := range sortedKeys(l.Sysctl) {
		if err := checkSysctl(k, ns); err != nil {
			return fmt.Errorf("field linux.sysctl: %s: %w", k, err)
		}
	}
	for i, p := range l.MaskedPaths {
		if !path.IsAbs(p) {
			return fmt.Errorf("field linux.maskedPaths[%d]: %q is not absolute", i, p)
		}
	}
	for i, p := range l.ReadonlyPaths {
		if !path.IsAbs(p) {
			return fmt.Errorf("field linux.readonlyPaths[%d]: %q is not absolute", i, p)
		}
	}
	switch l.RootfsPropagation {
	case "", "private", "rprivate", "slave", "rslave", "unbindable", "runbindable":
	case "shared", "rshared":
		// Every mount the partition's init makes would appear on the machine.
		return fmt.Errorf("field linux.rootfsPropagation: %q would let the partition's mounts reach the machine; use rslave (the default) or rprivate", l.RootfsPropagation)
	default:
		return fmt.Errorf("field linux.rootfsPropagation: unknown propagation %q", l.RootfsPropagation)
	}
	return nil
}

// checkSysctl allows only sysctls that one of the partition's own namespaces
// confines, as libcontainer does at start: any other would change the whole
// machine (kernel.core_pattern, vm.*, net.* with the machine's network).
func checkSysctl(key string, ns map[specs.LinuxNamespaceType]bool) error {
	k := strings.ReplaceAll(key, "/", ".")
	switch {
	case ipcSysctls[k] || strings.HasPrefix(k, "fs.mqueue."):
		if !ns[specs.IPCNamespace] {
			return errors.New("needs an ipc namespace")
		}
	case strings.HasPrefix(k, "net."):
		if !ns[specs.NetworkNamespace] {
			return errors.New("needs a network namespace: the partition shares the machine's network")
		}
	case k == "kernel.domainname":
		if !ns[specs.UTSNamespace] {
			return errors.New("needs a uts namespace")
		}
	case k == "kernel.hostname":
		return errors.New("set the hostname field instead")
	case strings.HasPrefix(k, "user."):
		if !ns[specs.UserNamespace] {
			return errors.New("needs a user namespace")
		}
	default:
		return errors.New("no namespace of the partition confines it: it would change the whole machine")
	}
	return nil
}

var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// check validates what metainit relies on, and what a hostile or mistaken
// config.json could otherwise slip past it (issue 7, case 17). Where
// libcontainer validates the same (sysctls, hostname, mappings), it does so
// only at start and without naming the field; the rest of its validation is
// not repeated, and its errors are reported at start as well.
func (b *Bundle) check() error {
	s := b.Spec
	if s.Version == "" {
		return errors.New("field ociVersion: missing")
	}
	if !versionRE.MatchString(s.Version) {
		return fmt.Errorf("field ociVersion: %q is not a 1.x runtime-spec version (such as 1.2.0)", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return errors.New("field root.path: missing")
	}
	b.Rootfs = s.Root.Path
	if !filepath.IsAbs(b.Rootfs) {
		b.Rootfs = filepath.Join(b.Dir, b.Rootfs)
	}
	fi, err := os.Stat(b.Rootfs)
	if err != nil {
		return fmt.Errorf("field root.path: rootfs %s: %w", b.Rootfs, errors.Unwrap(err))
	}
	// libcontainer wants the rootfs without symlinks in its path.
	if b.Rootfs, err = filepath.EvalSymlinks(b.Rootfs); err != nil {
		return fmt.Errorf("field root.path: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("field root.path: rootfs %s is not a directory", b.Rootfs)
	}
	if s.Process == nil || len(s.Process.Args) == 0 {
		return errors.New("field process.args: missing (the init to run, such as /sbin/init)")
	}
	if err := checkProcess(s.Process); err != nil {
		return err
	}
	if s.Linux == nil {
		return errors.New("field linux: missing (namespaces, devices and cgroups of the partition)")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, ns := range s.Linux.Namespaces {
		if !knownNamespaces[ns.Type] {
			return fmt.Errorf("field linux.namespaces[%d].type: unknown namespace %q", i, ns.Type)
		}
		if seen[ns.Type] {
			return fmt.Errorf("field linux.namespaces[%d]: namespace %q listed twice", i, ns.Type)
		}
		seen[ns.Type] = true
		// Joining an existing pid or mount namespace would put the init
		// next to someone else's processes and mounts (metainit's own, with
		// path /proc/1/ns/pid), not in a partition.
		if ns.Path != "" && (ns.Type == specs.PIDNamespace || ns.Type == specs.MountNamespace) {
			return fmt.Errorf("field linux.namespaces[%d].path: an init partition needs a new %s namespace, not %s", i, ns.Type, ns.Path)
		}
	}
	if !seen[specs.PIDNamespace] || !seen[specs.MountNamespace] {
		return errors.New("field linux.namespaces: an init partition needs its own pid and mount namespaces")
	}
	if err := checkLinux(s, seen); err != nil {
		return err
	}
	for i, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("field mounts[%d].destination: %q is not absolute", i, m.Destination)
		}
	}
	if b.Settings, err = parseSettings(s.Annotations); err != nil {
		return err
	}
	kind, resolved, err := DetectKind(b.Rootfs, s.Process.Args[0])
	if err != nil {
		return fmt.Errorf("field process.args[0]: init binary: %w", err)
	}
	b.Init = resolved
	if b.Settings.Kind == "" {
		b.Settings.Kind = kind
	}
	return nil
}
