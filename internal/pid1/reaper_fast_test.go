package pid1

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// With no owned child exited, Reap takes the orphans one by one from
// waitid(WNOWAIT) (no listing of children) and leaves a running owned child
// to its owner.
func TestReaperReapsOrphansWhileOwnedChildRuns(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("become subreaper: %v", err)
	}
	r := NewReaper()
	owned := exec.Command("sleep", "30")
	done := r.Spawning()
	if err := owned.Start(); err != nil {
		t.Fatal(err)
	}
	done(owned.Process.Pid)
	defer owned.Process.Kill() //nolint:errcheck // cleanup

	before := r.Reaped()
	makeOrphans(t, 50)
	deadline := time.Now().Add(5 * time.Second)
	for len(zombies(t)) < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if len(zombies(t)) < 10 {
		t.Fatalf("expected zombies before reaping, saw %d", len(zombies(t)))
	}
	for len(zombies(t)) > 0 && time.Now().Before(deadline) {
		r.Reap()
		time.Sleep(10 * time.Millisecond)
	}
	if left := zombies(t); len(left) > 0 {
		t.Fatalf("zombies left after reaping: %v", left)
	}
	if got := r.Reaped() - before; got < 50 {
		t.Errorf("reaped %d, want ≥ 50", got)
	}
	// The owner still waits for its child itself.
	_ = owned.Process.Kill()
	err := owned.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("owner's wait: %v, want the child's own status", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("owner got %v, want killed by SIGKILL", ws)
	}
	r.Release(owned.Process.Pid)
}
