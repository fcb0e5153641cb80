package partition

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mountHostDir puts a small tmpfs of its own on dir, the directory a
// partition sees at /run/host, and returns what unmounts it.
//
// A bind mount hands the partition a handle on the whole file system it is
// taken from, not just the directory: with CAP_DAC_READ_SEARCH (which
// `metainit spec` grants), open_by_handle_at(2) through it opens any inode of
// that file system (the "shocker" attack). With the run dir on the machine's
// root file system that was the machine's root directory, every file below
// it, and metainit's control socket. On a tmpfs of its own there is nothing
// but the partition's own notify socket to reach.
func mountHostDir(dir string) (undo func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k,nr_inodes=16"); err != nil {
		return nil, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return func() { _ = unix.Unmount(dir, unix.MNT_DETACH) }, nil
}
