package pid1

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Reaper is the one owner of reaping in PID 1. Orphans re-parented to PID 1
// are reaped; children whose exit status someone else waits for (a
// partition's init, an exec'd command: libcontainer waits for those) are
// never touched, so no exit status is stolen.
//
// How: a process is started inside Spawning, which keeps the reaper out while
// libcontainer forks and waits for its own intermediate children; Spawning's
// done func names the PIDs the caller will wait for itself. A reaping pass
// lists PID 1's children (/proc/self/task/*/children) and reaps, one by one
// and without blocking, every child not so claimed. A blanket wait4(-1) would
// steal statuses; waitid(WNOWAIT) shows only one child at a time.
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
// SIGCHLDs coalesce, so each pass takes all there are.
func (r *Reaper) Reap() int {
	r.spawn.Lock()
	defer r.spawn.Unlock()
	n := 0
	for {
		k := r.pass()
		n += k
		if k == 0 {
			break
		}
	}
	r.mu.Lock()
	r.reaped += uint64(n)
	r.mu.Unlock()
	return n
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
