package partition

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is what a partition's cgroup says it uses (cgroup v2 files, or their
// v1 equivalents, read through libcontainer's cgroup manager).
type Usage struct {
	Processes   uint64 `json:"processes"`
	MemoryBytes uint64 `json:"memory_bytes"`
	CPUNanos    uint64 `json:"cpu_ns"`
	PidsLimit   uint64 `json:"pids_limit,omitempty"`
	MemoryLimit uint64 `json:"memory_limit,omitempty"`
	OOMKills    uint64 `json:"oom_kills"`
}

// Usage reads the running partition's cgroup figures.
func (p *Partition) Usage() (Usage, bool) {
	p.mu.Lock()
	inst := p.inst
	p.mu.Unlock()
	if inst == nil {
		return Usage{}, false
	}
	st, err := inst.c.Stats()
	if err != nil || st.CgroupStats == nil {
		return Usage{}, false
	}
	cg := st.CgroupStats
	u := Usage{
		Processes:   cg.PidsStats.Current,
		PidsLimit:   cg.PidsStats.Limit,
		MemoryBytes: cg.MemoryStats.Usage.Usage,
		MemoryLimit: cg.MemoryStats.Usage.Limit,
		CPUNanos:    cg.CpuStats.CpuUsage.TotalUsage,
	}
	if u.MemoryLimit > 1<<60 { // "max"
		u.MemoryLimit = 0
	}
	u.OOMKills = oomKills(inst.cgroupPaths)
	return u, true
}

// oomKills reads the OOM kill count: memory.oom_control of the v1 memory
// controller, else memory.events of cgroup2 (both have an "oom_kill N" line).
// On a hybrid host "" names the unified hierarchy, which has no memory
// controller there: v1 comes first.
func oomKills(paths map[string]string) uint64 {
	for _, file := range []string{filepath.Join(paths["memory"], "memory.oom_control"), filepath.Join(paths[""], "memory.events")} {
		if n, ok := readOOMKill(file); ok {
			return n
		}
	}
	return 0
}

func readOOMKill(file string) (uint64, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
