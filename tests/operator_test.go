package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/partition"
	"golang.org/x/sys/unix"
)

// tmux drives a real terminal as a person would: send-keys to type,
// capture-pane to read the screen. Each test has a tmux server of its own
// (-L), which it kills at the end.
type tmux struct {
	t      *testing.T
	server string
}

func newTmux(t *testing.T, in *Instance, sessions ...string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed (apt-get install tmux; .ci/run installs it)")
	}
	tm := &tmux{t: t, server: fmt.Sprintf("metainit-test-%d", os.Getpid())}
	for _, s := range sessions {
		tm.run("new-session", "-d", "-s", s, "-x", "160", "-y", "50", "env", "-i",
			"PATH="+os.Getenv("PATH"), "TERM=xterm", "HOME=/root",
			"METAINIT_SOCKET="+filepath.Join(in.RunDir, "control.sock"), "PS1=host$ ", "bash", "--norc", "--noprofile")
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", tm.server, "kill-server").Run() })
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.server}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// typeLine types text and Enter into session s.
func (tm *tmux) typeLine(s, text string) {
	tm.run("send-keys", "-t", s, "-l", text)
	tm.run("send-keys", "-t", s, "Enter")
}

func (tm *tmux) screen(s string) string {
	return tm.run("capture-pane", "-p", "-J", "-t", s, "-S", "-300")
}

// waitFor waits until session s's screen contains want.
func (tm *tmux) waitFor(s, want string, timeout time.Duration) {
	tm.t.Helper()
	tm.waitForN(s, want, 1, timeout)
}

// waitForN waits until want is on session s's screen n times.
func (tm *tmux) waitForN(s, want string, n int, timeout time.Duration) {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for strings.Count(tm.screen(s), want) < n {
		if time.Now().After(deadline) {
			tm.t.Fatalf("session %s: %q not on screen within %s:\n%s", s, want, timeout, tm.screen(s))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Issue 4, done-when 1: metainit console shows systemd's console-getty login
// prompt, logging in works, two operators see the same console, and
// detaching returns the terminal intact without disturbing the partition.
func TestConsoleLoginAndDetach(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", nil)
	in.Boot()
	st := in.WaitState("systemd", partition.StateReady, 60*time.Second)
	tm := newTmux(t, in, "a", "b")
	tm.typeLine("a", in.bin+" console systemd")
	tm.waitFor("a", "Press Ctrl-] three times", 10*time.Second)
	tm.run("send-keys", "-t", "a", "Enter") // the getty prints its prompt again
	tm.waitFor("a", "login:", 30*time.Second)
	tm.typeLine("a", "root")
	tm.waitFor("a", "Password:", 10*time.Second)
	tm.typeLine("a", "metainit")
	tm.waitFor("a", "root@", 20*time.Second)

	// A second operator attaches and sees what the first one types.
	tm.typeLine("b", in.bin+" console systemd")
	tm.waitFor("b", "Press Ctrl-] three times", 10*time.Second)
	tm.typeLine("a", "echo seen-by-both-$((6*7))")
	tm.waitFor("a", "seen-by-both-42", 10*time.Second)
	tm.waitFor("b", "seen-by-both-42", 10*time.Second)
	// Input from the second goes to the same console.
	tm.typeLine("b", "echo typed-in-b-$((2*5))")
	tm.waitFor("a", "typed-in-b-10", 10*time.Second)

	for _, s := range []string{"a", "b"} {
		tm.run("send-keys", "-t", s, "C-]", "C-]", "C-]")
		tm.waitFor(s, "Detached from partition systemd", 10*time.Second)
		tm.typeLine(s, `stty -a | grep -q -- '-icanon' && echo MODE-RAW || echo MODE-COOKED-$((1+1))`)
		tm.waitFor(s, "MODE-COOKED-2", 10*time.Second)
	}
	if now := in.List()["systemd"]; now.Pid != st.Pid || now.State != partition.StateReady {
		t.Errorf("attaching disturbed the partition: pid %d→%d, %s", st.Pid, now.Pid, now.State)
	}
	// The login session stays on the console after detaching (as on a serial line).
	tm.typeLine("a", in.bin+" console systemd")
	tm.waitFor("a", "Press Ctrl-] three times", 10*time.Second)
	tm.typeLine("a", "echo still-logged-in-$((9*9))")
	tm.waitFor("a", "still-logged-in-81", 10*time.Second)
	tm.run("send-keys", "-t", "a", "C-]", "C-]", "C-]")
}

// Issue 4, done-when 2: exec -t gives a shell with job control.
func TestExecTtyJobControl(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", nil)
	in.Boot()
	in.WaitState("systemd", partition.StateReady, 60*time.Second)
	tm := newTmux(t, in, "a")
	tm.typeLine("a", in.bin+" exec -t systemd -- bash")
	tm.waitFor("a", "root@", 10*time.Second)
	tm.typeLine("a", "tty; sleep 300 &")
	tm.waitFor("a", "/dev/pts/", 10*time.Second)
	tm.typeLine("a", "jobs")
	tm.waitFor("a", "Running", 10*time.Second)
	tm.typeLine("a", "fg")
	time.Sleep(300 * time.Millisecond)
	tm.run("send-keys", "-t", "a", "C-z")
	tm.waitFor("a", "Stopped", 10*time.Second)
	tm.typeLine("a", "kill %1; sleep 0.2; jobs; echo jobs-done")
	tm.waitFor("a", "jobs-done", 10*time.Second)
	tm.typeLine("a", "exit 3")
	tm.waitForN("a", "host$", 2, 10*time.Second) // the prompt after the exec line
	tm.typeLine("a", "echo exec-rc=$?")
	tm.waitFor("a", "exec-rc=3", 10*time.Second)
	if s := tm.screen("a"); strings.Contains(s, "no job control") {
		t.Errorf("the shell had no job control:\n%s", s)
	}
}

// Issue 4, done-when 2: logs -f follows; logs -n and --since select; top and
// status show cgroup figures that change when the partition does work.
func TestLogsTopStatus(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", nil)
	in.Boot()
	in.WaitState("systemd", partition.StateReady, 60*time.Second)

	follow := exec.Command(in.bin, "logs", "-f", "systemd")
	follow.Env = append(os.Environ(), "METAINIT_SOCKET="+filepath.Join(in.RunDir, "control.sock"))
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill(); _ = follow.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := in.Exec("systemd", "sh", "-c", "echo follow-marker-$((3*7)) > /dev/console"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("logs -f ended")
			}
			found = strings.Contains(l, "follow-marker-21")
		case <-deadline:
			t.Fatal("logs -f did not show the new line")
		}
	}
	if got := strings.Count(in.MustCLI("logs", "systemd", "-n", "3"), "\n"); got != 3 {
		t.Errorf("logs -n 3 printed %d lines", got)
	}
	if !strings.Contains(in.MustCLI("logs", "systemd", "--since", "1m"), "follow-marker-21") {
		t.Error("logs --since 1m lacks the marker")
	}
	if strings.Contains(in.MustCLI("logs", "systemd", "--since", time.Now().Add(time.Hour).Format(time.RFC3339)), "follow-marker") {
		t.Error("logs --since the future printed lines")
	}
	b, _ := os.ReadFile(filepath.Join(in.RunDir, "log", "systemd.log"))
	if !strings.Contains(string(b), "follow-marker-21") {
		t.Error("the log file lacks the marker")
	}

	usage := func() partition.Usage {
		var s partition.Status
		if err := json.Unmarshal([]byte(in.MustCLI("status", "systemd", "--json")), &s); err != nil || s.Usage == nil {
			t.Fatalf("status --json: %v %+v", err, s)
		}
		return *s.Usage
	}
	before := usage()
	if before.Processes == 0 || before.MemoryBytes == 0 || before.CPUNanos == 0 {
		t.Fatalf("status shows no figures: %+v", before)
	}
	_, _ = in.Exec("systemd", "sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; for n in 1 2 3 4 5; do sleep 120 </dev/null >/dev/null 2>&1 & done")
	after := usage()
	if after.CPUNanos <= before.CPUNanos+50_000_000 || after.Processes < before.Processes+5 {
		t.Errorf("figures did not follow the work: before %+v, after %+v", before, after)
	}
	top := in.MustCLI("top", "--once")
	if !strings.Contains(top, "PROCS") || !strings.Contains(top, "CPU%") || !strings.Contains(top, "systemd") {
		t.Errorf("top --once:\n%s", top)
	}
	status := in.MustCLI("status", "systemd")
	for _, want := range []string{"State:", "Tasks:", "Memory:", "CPU:", "Restarts:", "Bundle:"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
}

// Issue 4, done-when 4: 200 clients that vanish mid-console, mid-exec,
// mid-exec -t and mid-logs -f leave no goroutine, fd or pty behind in PID 1.
func TestDisconnectsLeakNothing(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("systemd", "systemd", nil)
	in.Boot()
	in.WaitState("systemd", partition.StateReady, 60*time.Second)
	sock := filepath.Join(in.RunDir, "control.sock")
	info := func() control.Info {
		var i control.Info
		if err := json.Unmarshal([]byte(in.MustCLI("info", "--json")), &i); err != nil {
			t.Fatal(err)
		}
		return i
	}
	procs := func() uint64 {
		var s partition.Status
		_ = json.Unmarshal([]byte(in.MustCLI("status", "systemd", "--json")), &s)
		return s.Usage.Processes
	}
	// Warm up each path once, so lazily started goroutines count in "before".
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	defer devnull.Close()
	cycle := func(i int) {
		var req *control.Request
		var files []*os.File
		switch i % 4 {
		case 0:
			req = &control.Request{Verb: "console", Name: "systemd"}
		case 1:
			req = &control.Request{Verb: "logs", Name: "systemd", Follow: true}
		case 2:
			req = &control.Request{Verb: "exec", Name: "systemd", Tty: true, Args: []string{"sleep", "100"}, Rows: 24, Cols: 80}
		case 3:
			req = &control.Request{Verb: "exec", Name: "systemd", Args: []string{"sleep", "100"}}
			files = []*os.File{devnull, devnull, devnull}
		}
		if files != nil {
			// A plain exec answers only at the end: hang up while it runs.
			hangUpDuring(t, sock, req, files)
			return
		}
		c, resp, err := control.Open(sock, req)
		if err != nil || c == nil {
			t.Fatalf("%s: %v %+v", req.Verb, err, resp)
		}
		_ = c.Input([]byte("x"))
		c.Close()
	}
	for i := 0; i < 4; i++ {
		cycle(i)
	}
	time.Sleep(time.Second)
	before, procsBefore := info(), procs()
	for i := 0; i < 200; i++ {
		cycle(i)
	}
	var after control.Info
	in.Eventually(10*time.Second, "PID 1 back to its goroutines and fds", func() error {
		after = info()
		if after.Goroutines > before.Goroutines+2 || after.FDs > before.FDs {
			return fmt.Errorf("goroutines %d→%d, fds %d→%d", before.Goroutines, after.Goroutines, before.FDs, after.FDs)
		}
		return nil
	})
	in.Eventually(10*time.Second, "no command left running in the partition", func() error {
		if p := procs(); p > procsBefore {
			return fmt.Errorf("processes %d→%d", procsBefore, p)
		}
		return nil
	})
	t.Logf("after 200 vanished clients: goroutines %d→%d, fds %d→%d, partition processes %d→%d",
		before.Goroutines, after.Goroutines, before.FDs, after.FDs, procsBefore, procs())
}

// hangUpDuring sends a request with files attached, as the CLI does, and
// hangs up 30ms later, while the server is still serving it.
func hangUpDuring(t *testing.T, sock string, req *control.Request, files []*os.File) {
	t.Helper()
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(req)
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	if _, _, err := conn.WriteMsgUnix(b, unix.UnixRights(fds...), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	conn.Close()
}

// Issue 4, bad input: a partition that does not exist or a malformed argument
// gets one clear line and exit code 1 or 2; nothing changes.
func TestCLIBadInput(t *testing.T) {
	in := NewInstance(t)
	in.AddPartition("runit", "runit", nil)
	in.Boot()
	in.WaitState("runit", partition.StateReady, 60*time.Second)
	before := in.List()
	run := func(args ...string) (int, string) {
		cmd := exec.Command(in.bin, args...)
		cmd.Env = append(os.Environ(), "METAINIT_SOCKET="+filepath.Join(in.RunDir, "control.sock"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		cmd.Stdin = strings.NewReader("")
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	for _, verb := range [][]string{{"status"}, {"start"}, {"stop"}, {"restart"}, {"logs"}, {"reset-failed"}, {"exec", "nosuch", "--", "true"}} {
		args := verb
		if len(args) == 1 {
			args = append(args, "nosuch")
		}
		code, msg := run(args...)
		if code != 1 || strings.Count(strings.TrimSpace(msg), "\n") != 0 || !strings.Contains(msg, "nosuch") {
			t.Errorf("metainit %v: exit %d, stderr %q (want 1 and one line naming it)", args, code, msg)
		}
	}
	for _, args := range [][]string{{"status"}, {"list", "extra"}, {"logs", "runit", "-n", "-5"}, {"logs", "runit", "--since", "yesterday-ish"},
		{"exec", "runit"}, {"exec", "--", "true"}, {"stop", "a", "b"}, {"frobnicate"}, {"top", "--interval", "1ms"}, {"status", "../etc"}} {
		code, msg := run(args...)
		if (code != 2 && code != 1) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Errorf("metainit %v: exit %d, stderr %q (want 1 or 2 and one line)", args, code, msg)
		}
	}
	if code, _ := run("status", "../etc"); code != 1 {
		t.Errorf("a bad name should be refused by the instance (exit 1), got %d", code)
	}
	after := in.List()
	if after["runit"].Pid != before["runit"].Pid || len(after) != len(before) {
		t.Errorf("bad input changed something: %+v → %+v", before, after)
	}
}
