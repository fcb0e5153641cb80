package partition

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Kind is the init system a partition runs. It decides how metainit asks the
// init to stop, power off or reboot, and how readiness is seen.
type Kind string

const (
	KindSystemd  Kind = "systemd"
	KindRunit    Kind = "runit"
	KindSysvinit Kind = "sysvinit"
	KindBusybox  Kind = "busybox"
	KindGeneric  Kind = "generic"
)

var kinds = []Kind{KindSystemd, KindRunit, KindSysvinit, KindBusybox, KindGeneric}

func kindList() string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// ParseKind accepts the names above.
func ParseKind(s string) (Kind, error) {
	for _, k := range kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown init kind %q (want %s)", s, kindList())
}

// The binaries each kind is known by, after symlinks are resolved inside the
// rootfs. The base name is what counts: Debian, Alpine and Arch place them
// differently.
var kindBinaries = map[string]Kind{
	"systemd":    KindSystemd,
	"runit":      KindRunit,
	"runit-init": KindRunit,
	"busybox":    KindBusybox,
}

// DetectKind resolves init (process.args[0]) inside rootfs, following symlinks
// inside the rootfs only, and names the init it finds. /sbin/init that is a
// real file (not a link to systemd, runit or busybox) is sysvinit.
func DetectKind(rootfs, init string) (Kind, string, error) {
	resolved, err := resolveInRoot(rootfs, init)
	if err != nil {
		return "", "", err
	}
	base := path.Base(resolved)
	if k, ok := kindBinaries[base]; ok {
		return k, resolved, nil
	}
	if base == "init" {
		// runit-init is a file named init in some distributions; sysvinit's is too.
		// sysvinit's binary carries its FIFO's name; runit's does not.
		if fileContains(filepath.Join(rootfs, resolved), "/run/initctl") {
			return KindSysvinit, resolved, nil
		}
		if fileContains(filepath.Join(rootfs, resolved), "runit") {
			return KindRunit, resolved, nil
		}
	}
	return KindGeneric, resolved, nil
}

// resolveInRoot follows symlinks of p as if rootfs were /, never leaving it.
// It returns the resolved absolute path (relative to rootfs) of a regular
// file, or an error that names what is missing.
func resolveInRoot(rootfs, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path", p)
	}
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	for hops := 0; len(rest) > 0; {
		part := rest[0]
		rest = rest[1:]
		if part == "" || part == "." {
			continue
		}
		if part == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		fi, err := os.Lstat(filepath.Join(rootfs, next))
		if err != nil {
			return "", fmt.Errorf("%s not found in rootfs", next)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if hops++; hops > 40 {
				return "", fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target, err := os.Readlink(filepath.Join(rootfs, next))
			if err != nil {
				return "", err
			}
			if path.IsAbs(target) {
				cur = "/"
			}
			rest = append(strings.Split(strings.TrimPrefix(target, "/"), "/"), rest...)
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return "", fmt.Errorf("%s is not a directory", next)
		}
		if len(rest) == 0 && !fi.Mode().IsRegular() {
			return "", fmt.Errorf("%s is not a regular file", next)
		}
		cur = next
	}
	return cur, nil
}

func fileContains(file, needle string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	// Init binaries are small; read at most 4 MiB.
	data, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	return strings.Contains(string(data), needle)
}

// Kinds lists the known kinds, sorted, for help texts.
func Kinds() []string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	sort.Strings(s)
	return s
}
