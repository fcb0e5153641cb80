package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/capability"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ociRuntime is crun or runc, driven by its CLI as a user would.
type ociRuntime struct {
	name string // crun, runc
	bin  string
	root string // its state directory (--root): private to the bench
}

// peerBundle writes the bundle crun and runc run: the partition's own
// config.json with only what they could not take changed, each change being
// one metainit makes itself at start (partition/container.go):
//   - ociVersion 1.0.2: Debian's crun 1.8 refuses 1.3.0 ("unknown version");
//   - capabilities this machine does not hold dropped (no CAP_SYS_RESOURCE
//     here), hard rlimits clamped to the bench's own;
//   - linux.cgroupsPath set, at the same depth metainit uses
//     (/<parent>/<name>);
//   - metainit's annotations removed.
func peerBundle(dir string, s *rspec.Spec, cgroupsPath string) error {
	c, err := cloneSpec(s)
	if err != nil {
		return err
	}
	c.Version = "1.0.2"
	c.Linux.CgroupsPath = cgroupsPath
	c.Annotations = nil
	if caps := c.Process.Capabilities; caps != nil {
		held := heldCaps()
		f := func(l []string) []string {
			var out []string
			for _, n := range l {
				if held[n] {
					out = append(out, n)
				}
			}
			return out
		}
		caps.Bounding, caps.Effective, caps.Permitted = f(caps.Bounding), f(caps.Effective), f(caps.Permitted)
		caps.Inheritable, caps.Ambient = f(caps.Inheritable), f(caps.Ambient)
	}
	for i := range c.Process.Rlimits {
		if c.Process.Rlimits[i].Type == "RLIMIT_NOFILE" {
			var own unix.Rlimit
			if unix.Getrlimit(unix.RLIMIT_NOFILE, &own) == nil && c.Process.Rlimits[i].Hard > own.Max {
				c.Process.Rlimits[i].Hard = own.Max
				c.Process.Rlimits[i].Soft = min(c.Process.Rlimits[i].Soft, own.Max)
			}
		}
	}
	return writeSpec(dir, c)
}

func cloneSpec(s *rspec.Spec) (*rspec.Spec, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var c rspec.Spec
	return &c, json.Unmarshal(b, &c)
}

func heldCaps() map[string]bool {
	held := map[string]bool{}
	c, err := capability.NewPid2(0)
	if err != nil || c.Load() != nil {
		return held
	}
	for _, cp := range capability.ListKnown() {
		if c.Get(capability.BOUNDING, cp) {
			held["CAP_"+strings.ToUpper(cp.String())] = true
		}
	}
	return held
}

// runCmd is `<rt> run -d` of bundle as id; stdio on /dev/null (a detached
// container inherits them: a pipe would never see EOF), errors in a file.
func (rt *ociRuntime) runCmd(bundle, id, errFile string) (*exec.Cmd, error) {
	ef, err := os.Create(errFile)
	if err != nil {
		return nil, err
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		ef.Close()
		return nil, err
	}
	cmd := exec.Command(rt.bin, "--root", rt.root, "run", "-d", "--bundle", bundle, id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, ef
	return cmd, nil
}

// delete removes a container whatever its state.
func (rt *ociRuntime) delete(id string) error {
	out, err := exec.Command(rt.bin, "--root", rt.root, "delete", "-f", id).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("does not exist")) && !bytes.Contains(out, []byte("not exist")) {
		return fmt.Errorf("%s delete %s: %v: %s", rt.name, id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nspawn is one `systemd-nspawn --boot` container.
type nspawn struct {
	e       *env
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	notify  *net.UnixConn
	ready   chan time.Duration // CLOCK_MONOTONIC when READY=1 arrived
	release *os.File           // write end: lets the held process exec nspawn
	leader  int                // host PID of the container's init, once known
}

// nspawnArgs are the options that make nspawn comparable with a metainit
// partition on a machine without systemd as PID 1:
//   - --register=no --keep-unit: no machined, no system bus here; the
//     container stays in the cgroup it is started in (prepared below, at the
//     same depth as metainit's partitions);
//   - --console=read-only: a pty console whose output is kept, as metainit
//     keeps its partitions' consoles in a log;
//   - --kill-signal=SIGRTMIN+4: SIGTERM to nspawn asks systemd to power off,
//     the request metainit sends on stop (nspawn's default is SIGRTMIN+3, halt);
//   - --notify-ready=yes: nspawn passes systemd's READY=1 on to our socket.
//
// Host network and no user namespace: as metainit's partitions.
func nspawnArgs(name, rootfs string) []string {
	return []string{"systemd-nspawn", "--boot", "--notify-ready=yes", "-D", rootfs, "-M", name,
		"--register=no", "--keep-unit", "--console=read-only", "--kill-signal=SIGRTMIN+4"}
}

// prepareNspawn starts a helper that joins cgroup /<cg> and waits; goNow
// makes it exec systemd-nspawn. Placing nspawn in its cgroup (a cgroup.procs
// write: one RCU grace period, ~15ms on this cgroup v1 host) is what a
// service manager does before it starts nspawn, so it is kept off the clock.
// The cgroup work nspawn does for the container itself stays on it, as
// metainit's partition cgroup work does.
func (e *env) prepareNspawn(name, rootfs, cg string) (*nspawn, error) {
	return e.prepareNspawnArgs(name, cg, nspawnArgs(name, rootfs))
}

func (e *env) prepareNspawnArgs(name, cg string, nsArgs []string) (*nspawn, error) {
	if err := mkCgroup(cg); err != nil {
		return nil, err
	}
	sock := filepath.Join(e.work, "nspawn-"+name+".notify")
	_ = os.Remove(sock)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		conn.Close()
		return nil, err
	}
	logf, err := os.Create(filepath.Join(e.work, "nspawn-"+name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := append([]string{helperCgexec, cg}, nsArgs...)
	cmd := exec.Command(e.self, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{r} // fd 3
	if err := e.start(cmd); err != nil {
		r.Close()
		w.Close()
		conn.Close()
		return nil, err
	}
	r.Close()
	n := &nspawn{e: e, name: name, cmd: cmd, exited: make(chan struct{}), notify: conn,
		ready: make(chan time.Duration, 1), release: w}
	go func() {
		_ = cmd.Wait()
		close(n.exited)
	}()
	go n.readNotify()
	e.onCleanup(func() { n.stop(); e.removeCgroups(cg) })
	// Ready when the helper shows in its cgroup.
	procs := filepath.Join(cgroupRoots()[0], cg, "cgroup.procs")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(procs)
		if strings.Contains(" "+strings.Join(strings.Fields(string(b)), " ")+" ", " "+strconv.Itoa(cmd.Process.Pid)+" ") {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nspawn helper did not join cgroup %s", cg)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return n, nil
}

// goNow lets nspawn start; it returns CLOCK_MONOTONIC just before.
func (n *nspawn) goNow() time.Duration {
	t := monoNow()
	_, _ = n.release.Write([]byte{1})
	n.release.Close()
	return t
}

func (n *nspawn) readNotify() {
	buf := make([]byte, 4096)
	sent := false
	for {
		k, _, err := n.notify.ReadFromUnix(buf)
		if err != nil {
			return
		}
		t := monoNow()
		for _, line := range strings.Split(string(buf[:k]), "\n") {
			if v, ok := strings.CutPrefix(line, "X_NSPAWN_LEADER_PID="); ok {
				n.leader, _ = strconv.Atoi(v)
			}
			if line == "READY=1" && !sent {
				sent = true
				n.ready <- t
			}
		}
	}
}

// waitReady returns when READY=1 arrived.
func (n *nspawn) waitReady(timeout time.Duration) (time.Duration, error) {
	select {
	case t := <-n.ready:
		return t, nil
	case <-n.exited:
		return 0, fmt.Errorf("nspawn %s exited before READY=1 (see %s)", n.name, filepath.Join(n.e.work, "nspawn-"+n.name+".log"))
	case <-time.After(timeout):
		return 0, fmt.Errorf("nspawn %s: no READY=1 after %s", n.name, timeout)
	}
}

// pid is the host PID of the systemd-nspawn process.
func (n *nspawn) pid() int { return n.cmd.Process.Pid }

// stopTimed sends SIGTERM (nspawn then sends SIGRTMIN+4, poweroff, to the
// container's init) and returns how long until nspawn exited.
func (n *nspawn) stopTimed(timeout time.Duration) (time.Duration, error) {
	t0 := monoNow()
	_ = n.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-n.exited:
		d := monoNow() - t0
		n.e.forget(n.cmd)
		n.notify.Close()
		return d, nil
	case <-time.After(timeout):
		n.stop()
		return 0, fmt.Errorf("nspawn %s: not stopped %s after SIGTERM", n.name, timeout)
	}
}

// stop ends nspawn whatever it runs: SIGTERM, a second SIGTERM after 5s
// (immediate termination; runit ignores systemd's signals), SIGKILL last.
func (n *nspawn) stop() {
	select {
	case <-n.exited:
	default:
		n.release.Close()
		_ = n.cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			_ = n.cmd.Process.Signal(unix.SIGTERM)
			select {
			case <-n.exited:
			case <-time.After(10 * time.Second):
				_ = n.cmd.Process.Kill()
				<-n.exited
			}
		}
	}
	n.e.forget(n.cmd)
	n.notify.Close()
}

// helperCgexec is the hidden first argument of the cgroup-exec helper:
// `bench __cgexec CGROUP CMD...` joins /CGROUP in every hierarchy, waits for
// one byte on fd 3, then execs CMD.
const helperCgexec = "__cgexec"

func cgexecMain(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: __cgexec CGROUP CMD...")
		return 2
	}
	if err := joinCgroup(args[0]); err != nil {
		fmt.Fprintln(os.Stderr, "cgexec:", err)
		return 1
	}
	release := os.NewFile(3, "release")
	b := make([]byte, 1)
	if n, _ := release.Read(b); n != 1 {
		return 1 // the bench gave up
	}
	release.Close()
	path, err := exec.LookPath(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgexec:", err)
		return 1
	}
	err = unix.Exec(path, args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "cgexec:", err)
	return 1
}
