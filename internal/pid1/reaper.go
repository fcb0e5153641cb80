package pid1

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reaper is the one owner of reaping in PID 1. Orphans re-parented to PID 1
// are reaped; children whose exit status someone else waits for (a
// partition's init, an exec'd command: libcontainer waits for those) are
// never touched, so no exit status is stolen.
//
// How: a process is started inside Spawning, which keeps the reaper out while
// libcontainer forks and waits for its own intermediate children; Spawning's
// done func names the PIDs the caller will wait for itself. Reap then takes
// the exited children one at a time (waitid WNOWAIT shows one without
// reaping it) and reaps each that is not so claimed. A blanket wait4(-1)
// would steal statuses. An owned child's exit, until its owner has waited for
// it, hides the others from waitid: then a pass lists PID 1's children
// (/proc/self/task/*/children) and reaps every unclaimed one.
type Reaper struct {
	spawn sync.RWMutex // readers: starts in progress; writer: a reaping pass

	mu    sync.Mutex
	owned map[int]bool
	// Reaped counts the orphans reaped so far (for tests and benchmarks).
	reaped uint64
}

// NewReaper returns a Reaper. Call Reap on every SIGCHLD.
func NewReaper() *Reaper {
	return &Reaper{owned: map[int]bool{}}
}

// Spawning holds reaping off until done is called with the PIDs the caller
// will wait for itself. Spawns may run concurrently with each other.
func (r *Reaper) Spawning() (done func(owned ...int)) {
	r.spawn.RLock()
	var once sync.Once
	return func(owned ...int) {
		once.Do(func() {
			r.mu.Lock()
			for _, pid := range owned {
				if pid > 0 {
					r.owned[pid] = true
				}
			}
			r.mu.Unlock()
			r.spawn.RUnlock()
		})
	}
}

// Release returns pid to the reaper once its owner has waited for it.
func (r *Reaper) Release(pid int) {
	r.mu.Lock()
	delete(r.owned, pid)
	r.mu.Unlock()
}

// Reap reaps every exited child that nobody else owns and returns how many.
// SIGCHLDs coalesce, so each call takes all there are.
//
// The fast way asks the kernel for the next exited child without reaping it
// (waitid WNOWAIT), and reaps it unless it is owned: two system calls per
// orphan, none of them a scan. An owned child's exit hides the others from
// waitid until its owner has waited for it, so once one shows up the rest
// are found by listing PID 1's children instead.
func (r *Reaper) Reap() int {
	r.spawn.Lock()
	defer r.spawn.Unlock()
	n := 0
	for {
		pid := nextExited()
		if pid <= 0 {
			break
		}
		if r.isOwned(pid) {
			for {
				k := r.pass()
				n += k
				if k == 0 {
					break
				}
			}
			break
		}
		if reapPid(pid) {
			n++
		}
	}
	r.mu.Lock()
	r.reaped += uint64(n)
	r.mu.Unlock()
	return n
}

// nextExited returns an exited child of PID 1, left unreaped, or 0.
// WNOHANG calls never block: they are made raw, without telling the Go
// scheduler, which saves a little per orphan when there are thousands.
func nextExited() int {
	var info unix.Siginfo // si_pid stays 0 when no child has exited
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_WAITID, unix.P_ALL, 0, uintptr(unsafe.Pointer(&info)),
			unix.WEXITED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0
		}
		return int(siginfoPid(&info))
	}
}

// reapPid reaps pid if it has exited.
func reapPid(pid int) bool {
	var ws unix.WaitStatus
	got, _, errno := unix.RawSyscall6(unix.SYS_WAIT4, uintptr(pid), uintptr(unsafe.Pointer(&ws)), unix.WNOHANG|unix.WALL, 0, 0, 0)
	return errno == 0 && int(got) == pid
}

// siginfoPid reads si_pid: the union after si_signo, si_errno and si_code
// starts at the next pointer-aligned offset (16 on 64-bit Linux).
func siginfoPid(info *unix.Siginfo) int32 {
	const align = unsafe.Alignof(uintptr(0))
	const off = (3*4 + align - 1) &^ (align - 1)
	return *(*int32)(unsafe.Add(unsafe.Pointer(info), off))
}

func (r *Reaper) isOwned(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owned[pid]
}

func (r *Reaper) pass() int {
	n := 0
	for _, pid := range children() {
		r.mu.Lock()
		owned := r.owned[pid]
		r.mu.Unlock()
		if owned {
			continue
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if err == nil && got == pid {
			n++
		}
	}
	return n
}

// Reaped returns the number of orphans reaped so far.
func (r *Reaper) Reaped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reaped
}

// children lists this process's children, of all its threads (a child
// belongs to the thread that forked it; orphans go to one of them).
func children() []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil
	}
	var pids []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
