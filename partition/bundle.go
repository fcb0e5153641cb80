package partition

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
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
		return nil, fmt.Errorf("%s: not valid UTF-8", file)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s: %w", file, describeJSONError(data, err))
	}
	return &spec, nil
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

// check validates what metainit relies on. It does not repeat libcontainer's
// own validation, which runs at start and whose errors are reported as well.
func (b *Bundle) check() error {
	s := b.Spec
	if s.Version == "" {
		return errors.New("field ociVersion: missing")
	}
	if !strings.HasPrefix(s.Version, "1.") {
		return fmt.Errorf("field ociVersion: %q is not a 1.x runtime-spec version", s.Version)
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
	if s.Linux == nil {
		return errors.New("field linux: missing (namespaces, devices and cgroups of the partition)")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, ns := range s.Linux.Namespaces {
		if seen[ns.Type] {
			return fmt.Errorf("field linux.namespaces[%d]: namespace %q listed twice", i, ns.Type)
		}
		seen[ns.Type] = true
	}
	if !seen[specs.PIDNamespace] || !seen[specs.MountNamespace] {
		return errors.New("field linux.namespaces: an init partition needs its own pid and mount namespaces")
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
