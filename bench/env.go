package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/metainit/metainit/internal/pid1"
	"golang.org/x/sys/unix"
)

// innerEnv marks the bench process that runs inside its own mount namespace.
const innerEnv = "METAINIT_BENCH_INNER"

// runPrivate re-executes the bench in a private mount namespace, so its
// overlays and its view of /sys/fs/cgroup never show on the host, and
// everything it mounted goes away with it. It returns the inner run's exit
// code; ok is false when this process already is the inner run.
func runPrivate() (code int, ok bool) {
	if os.Getenv(innerEnv) == "1" {
		return 0, false
	}
	before, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), innerEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Go makes / recursively private in the child when it unshares CLONE_NEWNS.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1, true
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s) // the inner run cleans up and exits
		}
	}()
	err := cmd.Wait()
	checkCgroup2Restored(before)
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return ee.ExitCode(), true
	}
	if err != nil {
		return 1, true
	}
	return 0, true
}

// checkCgroup2Restored waits until the controllers the inner run bound to
// cgroup v1 (hybridCgroups) are back on cgroup2. A v1 hierarchy outlives its
// last mount when a child cgroup was still being released at that moment;
// mounting it once more, empty, and unmounting it ends it. That is done here
// if needed, in a mount namespace of its own.
func checkCgroup2Restored(before []byte) {
	want := strings.TrimSpace(string(before))
	if want == "" {
		return
	}
	restored := func() bool {
		for i := 0; i < 30; i++ {
			now, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
			if strings.TrimSpace(string(now)) == want {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}
	if restored() {
		return
	}
	cmd := exec.Command("/proc/self/exe", append([]string{helperCgrelease}, strings.Fields(want)...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	_ = cmd.Run()
	if !restored() {
		fmt.Fprintf(os.Stderr, "bench: WARNING: cgroup2 controllers %q are not back on /sys/fs/cgroup/unified (see grep in /proc/cgroups); mount their v1 hierarchy once (mount -t cgroup -o NAME cgroup DIR), remove what is below it, and unmount it\n", want)
	}
}

// helperCgrelease: `bench __cgrelease CTRL...`, in a mount namespace of its
// own, mounts each controller's lingering v1 hierarchy, removes the cgroups
// left in it (only the bench ever mounts it) and unmounts it, which ends it.
const helperCgrelease = "__cgrelease"

func cgreleaseMain(ctrls []string) int {
	for _, c := range ctrls {
		dir, err := os.MkdirTemp("", "bench-cgrelease-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "cgrelease:", err)
			return 1
		}
		if err := unix.Mount("cgroup", dir, "cgroup", 0, c); err == nil {
			var dirs []string
			_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() && p != dir {
					dirs = append(dirs, p)
				}
				return nil
			})
			sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
			for _, d := range dirs {
				_ = os.Remove(d)
			}
			time.Sleep(500 * time.Millisecond) // let removed cgroups be released first
			_ = unix.Unmount(dir, 0)
		}
		_ = os.Remove(dir)
	}
	return 0
}

// env is one bench run: its work directory, what it mounted and started,
// and how to undo all of it.
type env struct {
	metainit string // the metainit binary under test
	self     string // this binary (helper modes)
	work     string // scratch directory, removed at the end
	logf     func(string, ...any)

	mu       sync.Mutex
	cleanups []func()          // run last first
	procs    map[int]*exec.Cmd // every process started, by PID
	overlays map[string]string // name → merged dir
	notes    []string          // what the run changed, for the report
	bound    []string          // cgroup2 controllers bound to v1 for the run
}

func (e *env) onCleanup(f func()) {
	e.mu.Lock()
	e.cleanups = append(e.cleanups, f)
	e.mu.Unlock()
}

func (e *env) note(format string, args ...any) {
	e.mu.Lock()
	e.notes = append(e.notes, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

// cleanup undoes everything, in reverse order. It may run twice (signal and
// normal end): each step runs once.
func (e *env) cleanup() {
	for {
		e.mu.Lock()
		if len(e.cleanups) == 0 {
			e.mu.Unlock()
			break
		}
		f := e.cleanups[len(e.cleanups)-1]
		e.cleanups = e.cleanups[:len(e.cleanups)-1]
		e.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					e.logf("cleanup: %v", r)
				}
			}()
			f()
		}()
	}
	// Any process of ours still alive is ended by its PID, never by name.
	e.mu.Lock()
	procs := e.procs
	e.procs = map[int]*exec.Cmd{}
	e.mu.Unlock()
	for pid, c := range procs {
		if c.ProcessState == nil && unix.Kill(pid, 0) == nil {
			e.logf("cleanup: killing leftover pid %d (%s)", pid, strings.Join(c.Args, " "))
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// start starts cmd in its own process group (a Ctrl-C reaches the bench
// only, which then stops everything in order) and remembers it.
func (e *env) start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return err
	}
	e.mu.Lock()
	e.procs[cmd.Process.Pid] = cmd
	e.mu.Unlock()
	return nil
}

// forget drops a waited-for process from the list.
func (e *env) forget(cmd *exec.Cmd) {
	e.mu.Lock()
	delete(e.procs, cmd.Process.Pid)
	e.mu.Unlock()
}

// run runs a short command to its end and returns its combined output.
func (e *env) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// mount wraps mount(2) and registers the unmount.
func (e *env) mount(src, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	e.onCleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			e.logf("unmount %s: %v", target, err)
		}
	})
	return nil
}

// overlay lays a fresh writable overlay over a cached rootfs, so the cache
// stays pristine, and returns the merged directory.
func (e *env) overlay(name, lower string) (string, error) {
	e.mu.Lock()
	merged, ok := e.overlays[name]
	e.mu.Unlock()
	if ok {
		return merged, nil // one overlay per name and run: later rows boot it warm
	}
	base := filepath.Join(e.work, "rootfs", name)
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return "", err
		}
	}
	merged = filepath.Join(base, "merged")
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, filepath.Join(base, "upper"), filepath.Join(base, "work"))
	if err := e.mount("overlay", merged, "overlay", 0, opts); err != nil {
		return "", err
	}
	e.mu.Lock()
	e.overlays[name] = merged
	e.mu.Unlock()
	return merged, nil
}

// privateRunSystemd puts a tmpfs on /run/systemd in the bench's namespace:
// systemd-nspawn keeps its lock and propagation directories there and
// refuses to clean them up on a disk-backed /run (this VM's /run is not a
// tmpfs).
func (e *env) privateRunSystemd() error {
	if _, err := os.Stat("/run/systemd"); err != nil {
		return nil // nspawn creates it; nothing of the host to hide
	}
	return e.mount("tmpfs", "/run/systemd", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755")
}

type mountInfo struct{ target, fstype, options string }

func mounts() []mountInfo {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		left, right, ok := strings.Cut(sc.Text(), " - ")
		lf, rf := strings.Fields(left), strings.Fields(right)
		if !ok || len(lf) < 5 || len(rf) < 3 {
			continue
		}
		out = append(out, mountInfo{target: lf[4], fstype: rf[0], options: rf[2]})
	}
	return out
}

// cgroupRoots lists the mounted cgroup hierarchies (one per v1 controller
// group, plus the unified one on a hybrid host).
func cgroupRoots() []string {
	var roots []string
	for _, m := range mounts() {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			roots = append(roots, m.target)
		}
	}
	return roots
}

// hybridCgroups prepares cgroups so that every tool can run on this host,
// the same way. On a hybrid host (cgroup v1 controllers, cgroup2 at
// /sys/fs/cgroup/unified) whose cgroup2 hierarchy still holds a controller
// (hugetlb here), crun refuses to create any container: "cgroups in hybrid
// mode not supported, drop all controllers from cgroupv2". So for the run,
// each such controller is bound to a v1 hierarchy of its own at
// /sys/fs/cgroup/<name>, over a private copy of /sys/fs/cgroup in the
// bench's mount namespace (the host sees no new directory). The binding
// itself is machine-wide while it lasts and ends when the last bench
// process is gone and its cgroups removed; nothing uses these controllers
// on cgroup2 here (cgroup.subtree_control is empty), which is checked.
func (e *env) hybridCgroups() error {
	data, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil {
		return nil // not hybrid
	}
	ctrls := strings.Fields(string(data))
	if len(ctrls) == 0 {
		return nil
	}
	if sub, _ := os.ReadFile("/sys/fs/cgroup/unified/cgroup.subtree_control"); strings.TrimSpace(string(sub)) != "" {
		return fmt.Errorf("cgroup2 controllers %q are in use on this host: crun cannot run here, and the bench will not take them away", strings.TrimSpace(string(sub)))
	}
	orig := filepath.Join(e.work, "cgroup-orig")
	if err := os.MkdirAll(orig, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("/sys/fs/cgroup", orig, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind /sys/fs/cgroup: %w", err)
	}
	defer unix.Unmount(orig, unix.MNT_DETACH)
	// No unmount registered for these: cgroups are removed through them at
	// the very end, and they go away with the namespace.
	if err := unix.Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return fmt.Errorf("tmpfs on /sys/fs/cgroup: %w", err)
	}
	entries, err := os.ReadDir(orig)
	if err != nil {
		return err
	}
	for _, en := range entries {
		src, dst := filepath.Join(orig, en.Name()), filepath.Join("/sys/fs/cgroup", en.Name())
		if en.Type()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(src); err == nil {
				_ = os.Symlink(t, dst)
			}
			continue
		}
		if !en.IsDir() {
			continue
		}
		if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dst, err)
		}
	}
	for _, c := range ctrls {
		dst := filepath.Join("/sys/fs/cgroup", c)
		if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("cgroup", dst, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, c); err != nil {
			return fmt.Errorf("mount cgroup v1 %s: %w", c, err)
		}
	}
	e.bound = ctrls
	e.note("cgroup2 controller(s) %s bound to cgroup v1 for the run (crun refuses hybrid hosts otherwise); the same cgroup layout for every tool", strings.Join(ctrls, ","))
	return nil
}

// mkCgroup creates /<path> in every hierarchy. In a cgroup v1 cpuset
// hierarchy a new cgroup has no CPUs and no memory nodes until given its
// parent's: nothing could join it otherwise.
func mkCgroup(path string) error {
	for _, r := range cgroupRoots() {
		dir := r
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				cur, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil || strings.TrimSpace(string(cur)) != "" {
					continue
				}
				if v, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
					if err := os.WriteFile(filepath.Join(dir, f), v, 0); err != nil {
						return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
					}
				}
			}
		}
	}
	return nil
}

// joinCgroup moves the calling process into /<path> of every hierarchy.
func joinCgroup(path string) error {
	for _, r := range cgroupRoots() {
		f := filepath.Join(r, path, "cgroup.procs")
		if err := os.WriteFile(f, []byte("0"), 0); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// removeCgroups removes /<path> and below from every hierarchy, retrying a
// little while the last processes of a container go away.
func (e *env) removeCgroups(path string) {
	for i := 0; i < 50; i++ {
		left := 0
		pid1.RemoveCgroupTree(path, func(string, ...any) { left++ })
		if left == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	pid1.RemoveCgroupTree(path, e.logf)
}

// childrenOf lists the children of pid (of all its threads).
func childrenOf(pid int) []int {
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	sort.Ints(out)
	return out
}

// waitChild waits until pid has a child and returns it.
func waitChild(pid int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c := childrenOf(pid); len(c) > 0 {
			return c[0], nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("pid %d has no child after %s", pid, timeout)
}

// memOf reads Rss and Pss (kB) of a process from smaps_rollup.
func memOf(pid int) (rss, pss float64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fs[1], 64)
		switch fs[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss, nil
}

// cmdline returns a process's command line, for messages.
func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// cgroupWarmth keeps the kernel's cgroup migration path warm while a timing
// row runs. Moving a process into a cgroup (every container start does, for
// its init) takes the kernel's cgroup_threadgroup_rwsem for writing; when
// no migration happened for a while, that first waits for an RCU grace
// period (~15ms on this VM's kernel; a cgroup hierarchy mounted with
// favordynmods removes the wait, and on Linux 6.18 for good: the bench does
// not use it). Whether a start pays it then depends on what else on the machine
// migrated processes in the last few milliseconds, which made the start
// figures of every tool jump by 15ms from run to run. A no-op migration (the
// bench into the cgroup it is already in) every 2ms keeps the path warm, so
// no tool pays the grace period and each pays only its own work.
type cgroupWarmth struct {
	stop chan struct{}
	done chan struct{}
}

// coldMigration measures what one migration costs after a quiet moment:
// the grace period the warmth takes out (or ~0.1ms when something else on
// the machine keeps the path warm anyway).
func coldMigration() (time.Duration, error) {
	f, err := ownPidsProcs()
	if err != nil {
		return 0, err
	}
	var ds []float64
	for i := 0; i < 5; i++ {
		time.Sleep(200 * time.Millisecond)
		t := time.Now()
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
			return 0, err
		}
		ds = append(ds, float64(time.Since(t)))
	}
	return time.Duration(summarize(ds).Median), nil
}

// ownPidsProcs is cgroup.procs of the cgroup the bench is in (pids
// hierarchy, or the unified one on a pure cgroup2 machine).
func ownPidsProcs() (string, error) {
	root, err := pidsRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && (f[1] == "pids" || (f[0] == "0" && filepath.Base(root) != "pids")) {
			return filepath.Join(root, f[2], "cgroup.procs"), nil
		}
	}
	return "", fmt.Errorf("no pids cgroup in /proc/self/cgroup")
}

func warmCgroups() (*cgroupWarmth, error) {
	path, err := ownPidsProcs()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	w := &cgroupWarmth{stop: make(chan struct{}), done: make(chan struct{})}
	pid := []byte(strconv.Itoa(os.Getpid()))
	go func() {
		defer close(w.done)
		defer f.Close()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			_, _ = f.Write(pid)
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w, nil
}

func (w *cgroupWarmth) Stop() {
	if w != nil {
		close(w.stop)
		<-w.done
	}
}
