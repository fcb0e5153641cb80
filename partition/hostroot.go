package partition

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/metainit/metainit/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// A partition whose root.path is "/" shares the machine's own root file
// system: the original MetaInit use case, one system with two inits. It
// cannot be given "/" itself: libcontainer binds the rootfs recursively, and
// the machine's /sys, /proc and /dev mounts would come along, where the
// partition's own sysfs cannot be mounted again (the kernel refuses the same
// superblock twice on one mount point, EBUSY). So metainit binds the machine's
// root file systems — / and every disk-backed mount below it, but none of the
// API file systems — to a directory of its own and gives the partition that.

// apiFS are the file systems a partition gets fresh from its spec, never from
// the machine.
var apiFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "cgroup": true,
	"cgroup2": true, "mqueue": true, "securityfs": true, "debugfs": true, "tracefs": true, "bpf": true,
	"pstore": true, "configfs": true, "fusectl": true, "hugetlbfs": true, "autofs": true,
	"binfmt_misc": true, "efivarfs": true, "rpc_pipefs": true, "nsfs": true,
}

// bindHostRoot makes dir a view of the machine's root file systems and
// returns a func that undoes it.
func bindHostRoot(dir string) (undo func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var done []string
	undo = func() {
		for i := len(done) - 1; i >= 0; i-- {
			_ = unix.Unmount(done[i], unix.MNT_DETACH)
		}
	}
	bind := func(src, dst string) error {
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", src, err)
		}
		done = append(done, dst)
		// Keep the partition's mounts from reaching the machine's (and back).
		return unix.Mount("", dst, "", unix.MS_PRIVATE, "")
	}
	if err := bind("/", dir); err != nil {
		undo()
		return nil, err
	}
	// Disk-backed mounts below /, parents first (mountinfo order may differ).
	var subs []string
	for _, m := range mountinfo.Read() {
		if m.Target != "/" && !apiFS[m.FSType] && !strings.HasPrefix(m.Target, dir) {
			subs = append(subs, m.Target)
		}
	}
	sort.Slice(subs, func(i, j int) bool { return strings.Count(subs[i], "/") < strings.Count(subs[j], "/") })
	for _, s := range subs {
		dst := filepath.Join(dir, s)
		if fi, err := os.Stat(dst); err != nil || !fi.IsDir() {
			continue
		}
		if err := bind(s, dst); err != nil {
			undo()
			return nil, err
		}
	}
	return undo, nil
}
