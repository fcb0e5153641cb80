package pid1

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// zombies lists this process's children that are zombies.
func zombies(t *testing.T) []int {
	t.Helper()
	var z []int
	for _, pid := range children() {
		b, err := readStat(pid)
		if err == nil && strings.Contains(b, ") Z ") {
			z = append(z, pid)
		}
	}
	return z
}

func readStat(pid int) (string, error) {
	out, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return string(out), err
}

// makeOrphans starts a shell that double-forks n children and exits; as a
// child subreaper, this test process inherits them.
func makeOrphans(t *testing.T, n int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt "+strconv.Itoa(n)+" ]; do (true &); i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
}

func TestReaperReapsOrphansButNotOwnedChildren(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("become subreaper: %v", err)
	}
	r := NewReaper()

	// An owned child: its status belongs to whoever started it.
	owned := exec.Command("sh", "-c", "exit 42")
	done := r.Spawning()
	if err := owned.Start(); err != nil {
		t.Fatal(err)
	}
	done(owned.Process.Pid)

	makeOrphans(t, 50)
	// Negative control: without a pass, the orphans stay zombies.
	deadline := time.Now().Add(5 * time.Second)
	for len(zombies(t)) < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(zombies(t)) < 10 {
		t.Fatalf("expected zombies before reaping, saw %d", len(zombies(t)))
	}

	for time.Now().Before(deadline) {
		r.Reap()
		if left := zombies(t); len(left) == 1 && left[0] == owned.Process.Pid {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if left := zombies(t); len(left) != 1 || left[0] != owned.Process.Pid {
		t.Fatalf("after reaping, zombies %v; want only the owned %d", left, owned.Process.Pid)
	}
	if r.Reaped() < 50 {
		t.Errorf("reaped %d, want ≥ 50", r.Reaped())
	}
	// The owner still gets the real status.
	err := owned.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.Sys().(syscall.WaitStatus).ExitStatus() != 42 {
		t.Fatalf("owned child's status was stolen: %v", err)
	}
	r.Release(owned.Process.Pid)
}

// Spawning keeps the reaper out: a pass waits until done.
func TestReaperWaitsForSpawns(t *testing.T) {
	r := NewReaper()
	done := r.Spawning()
	passed := make(chan struct{})
	go func() { r.Reap(); close(passed) }()
	select {
	case <-passed:
		t.Fatal("a reaping pass ran during a spawn")
	case <-time.After(50 * time.Millisecond):
	}
	done()
	select {
	case <-passed:
	case <-time.After(2 * time.Second):
		t.Fatal("the reaping pass never ran after the spawn")
	}
}
