package vm

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The kernel command line a boot loader would pass (Debian's grub passes
// root= and ro; the initramfs fscks / before mounting it), plus init=.
const baseCmdline = "root=/dev/vda ro console=ttyS0 panic=10"

// The partitions of the image (image.sh) and the one the test adds.
var partitions = []string{"console", "systemd", "runit"}

// Timeouts are for TCG (no KVM): everything runs several times slower than
// on hardware.
const (
	bootTimeout     = 4 * time.Minute // qemu start to every partition ready
	shutdownTimeout = 3 * time.Minute // a shutdown request to qemu's exit
	cmdTimeout      = 90 * time.Second
)

// TestVM boots the image with init=/sbin/metainit and checks the machine end
// to end (issue 5), then boots the same image with systemd alone for
// comparison. It needs METAINIT_VM_IMAGE (tests/vm/image.sh output): run it
// with make vm-test.
func TestVM(t *testing.T) {
	img := os.Getenv("METAINIT_VM_IMAGE")
	if img == "" {
		t.Skip("METAINIT_VM_IMAGE is not set: run make vm-test")
	}
	began := time.Now()
	logs := os.Getenv("METAINIT_VM_LOGS")
	if logs == "" {
		logs = filepath.Join(filepath.Dir(img), "last-run")
	}
	if err := os.RemoveAll(logs); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s; logs in %s", img, logs)
	if b, err := os.ReadFile(filepath.Join(img, "manifest")); err == nil {
		t.Logf("image manifest:\n%s", b)
	}
	accel, why := DetectAccel(img, logs)
	t.Logf("accelerator: %s (%s)", accel, why)

	// The cached image stays pristine: this run boots a copy.
	disk := filepath.Join(logs, "disk.img")
	if out, err := exec.Command("cp", "--sparse=always", filepath.Join(img, "disk.img"), disk).CombinedOutput(); err != nil {
		t.Fatalf("copy disk: %v: %s", err, out)
	}
	s := &scenario{t: t, img: img, logs: logs, accel: accel, disk: disk, token: randomToken()}
	defer func() {
		if !t.Failed() {
			os.Remove(disk) // 3 GiB; kept only to look into a failure
		}
	}()

	// Boot 1: checks 1-3, then the files of check 4 and metainit poweroff.
	vm1 := s.boot("boot1", "init=/sbin/metainit", false)
	ready1 := s.waitReady(vm1, partitions, "")
	t.Run("1-pid1-and-pure-cgroup2", func(t *testing.T) { s.checkPID1(t, vm1) })
	t.Run("2-side-by-side-and-network", func(t *testing.T) { s.checkSideBySide(t, vm1) })
	t.Run("3a-memory-max-oom-inside", func(t *testing.T) { s.checkOOM(t, vm1, ready1) })
	t.Run("3b-pids-max-fork-bomb", func(t *testing.T) { s.checkForkBomb(t, vm1, ready1) })
	t.Run("4a-write-files-and-poweroff", func(t *testing.T) { s.writeAndPoweroff(t, vm1) })
	s.metainitReady, s.metainitKernel = s.timeline("boot 1: init=/sbin/metainit, first boot of the image, ends with metainit poweroff", vm1, 0)
	if t.Failed() {
		t.Fatalf("boot 1 failed; logs in %s", logs)
	}

	// Boot 2: the files, a clean root, the broken bundle; then Ctrl-Alt-Del.
	vm2 := s.boot("boot2", "init=/sbin/metainit", false)
	s.waitReady(vm2, partitions, "broken")
	t.Run("4b-files-survive-clean-unmount", func(t *testing.T) { s.checkFilesAndCleanRoot(t, vm2, 0) })
	t.Run("bad-input-broken-bundle", func(t *testing.T) { s.checkBrokenBundle(t, vm2) })
	var rebootMark int
	t.Run("5-ctrl-alt-del-reboots-cleanly", func(t *testing.T) { rebootMark = s.checkCtrlAltDel(t, vm2) })
	// Boot 3 (the same qemu, after the reboot): a primary partition's own poweroff.
	t.Run("6-systemctl-poweroff-powers-off-machine", func(t *testing.T) { s.checkPrimaryPoweroff(t, vm2, rebootMark) })
	s.timeline("boot 2: files, broken bundle, then Ctrl-Alt-Del", vm2, 0)
	if rebootMark > 0 {
		s.timeline("boot 3: after the Ctrl-Alt-Del reboot, ends with systemctl poweroff in the systemd partition", vm2, rebootMark)
	}

	// Boot 4: metainit.rescue=1 on the pristine image (the console
	// partition, which also uses ttyS0, is left out so that the rescue shell
	// has the serial console alone).
	t.Run("bad-input-rescue-shell", func(t *testing.T) { s.checkRescue(t) })

	// Boots 5 and 6: the same pristine image with metainit, then with systemd
	// alone as the machine's init, back to back for comparison.
	t.Run("compare-systemd-alone", func(t *testing.T) { s.compareSystemdAlone(t) })

	t.Logf("total vm-test time %.1fs", time.Since(began).Seconds())
}

type scenario struct {
	t     *testing.T
	img   string
	logs  string
	accel string
	disk  string
	token string

	metainitReady  time.Duration // boot 1: qemu start to every partition ready
	metainitKernel time.Duration // boot 1: kernel start to every partition ready (kernel clock)
}

func randomToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// timeline prints one boot's timeline into the test log.
func (s *scenario) timeline(title string, vm *VM, mark int) (ready, sinceKernel time.Duration) {
	text, ready, sinceKernel := Timeline(title, vm, mark)
	s.t.Log(text)
	return ready, sinceKernel
}

// boot boots the run's disk, or with pristine the cached image itself with
// its writes discarded.
func (s *scenario) boot(name, initArg string, pristine bool) *VM {
	s.t.Helper()
	disk := s.disk
	if pristine {
		disk = filepath.Join(s.img, "disk.img")
	}
	vm, err := Boot(Config{
		Name: name, ImageDir: s.img, Disk: disk, Snapshot: pristine,
		Append: baseCmdline + " " + initArg, Accel: s.accel, WorkDir: s.logs, Logf: s.t.Logf,
	})
	if err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	s.t.Cleanup(vm.Kill)
	return vm
}

// status is what the test reads of `metainit list --json`.
type status struct {
	Name    string  `json:"name"`
	State   string  `json:"state"`
	Pid     int     `json:"pid"`
	ReadyIn float64 `json:"ready_in_seconds"`
	Error   string  `json:"error"`
}

func (s *scenario) list(t *testing.T, vm *VM) (map[string]status, error) {
	out, rc, err := vm.Agent.Run("metainit list --json", cmdTimeout)
	if err != nil || rc != 0 {
		return nil, fmt.Errorf("metainit list: rc %d, %v: %s", rc, err, out)
	}
	var all []status
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		return nil, fmt.Errorf("metainit list --json: %v: %s", err, out)
	}
	m := map[string]status{}
	for _, p := range all {
		m[p.Name] = p
	}
	return m, nil
}

// waitReady waits for a shell on hvc0, then until every named partition is
// ready (and failed, the one named failed). It fails the test at its timeout.
func (s *scenario) waitReady(vm *VM, names []string, failed string) map[string]status {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(bootTimeout)
	if err := vm.Agent.Sync(bootTimeout); err != nil {
		t.Fatalf("%s: %v", vm.cfg.Name, err)
	}
	var last map[string]status
	for time.Now().Before(deadline) {
		st, err := s.list(t, vm)
		if err != nil {
			t.Fatalf("%s: %v", vm.cfg.Name, err)
		}
		last = st
		done := failed == "" || st[failed].State == "failed"
		for _, n := range names {
			if st[n].State != "ready" {
				done = false
			}
		}
		if done {
			t.Logf("%s: ready after %.1fs: %s", vm.cfg.Name, time.Since(vm.Start).Seconds(), summary(st))
			return st
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("%s: partitions not ready within %s: %s", vm.cfg.Name, bootTimeout, summary(last))
	return nil
}

func summary(st map[string]status) string {
	var parts []string
	for _, p := range st {
		x := p.Name + "=" + p.State
		if p.Error != "" {
			x += " (" + p.Error + ")"
		}
		parts = append(parts, x)
	}
	return strings.Join(parts, ", ")
}

// sh runs a command in the console partition and fails t unless it exits 0.
func sh(t *testing.T, vm *VM, cmd string) string {
	t.Helper()
	out, rc, err := vm.Agent.Run(cmd, cmdTimeout)
	if err != nil || rc != 0 {
		t.Fatalf("%s: rc %d, %v:\n%s", cmd, rc, err, out)
	}
	return out
}

// in runs a command in a partition (metainit exec) and fails t unless it exits 0.
func in(t *testing.T, vm *VM, part, cmd string) string {
	t.Helper()
	return sh(t, vm, "metainit exec "+part+" -- sh -c "+quote(cmd))
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// put writes a file into the console partition's /tmp.
func put(t *testing.T, vm *VM, name, content string) {
	t.Helper()
	sh(t, vm, "echo "+base64.StdEncoding.EncodeToString([]byte(content))+" | base64 -d > /tmp/"+name)
}

// The machine as the console partition sees it: /host/proc is the machine's
// /proc, so /host/proc/1/root is the machine's root and PID 1's mounts.
const (
	machineRoot = "/host/proc/1/root"
	cgroupDir   = machineRoot + "/sys/fs/cgroup/metainit"
)

// 1. metainit is PID 1 of the machine; cgroup2 alone is at /sys/fs/cgroup.
func (s *scenario) checkPID1(t *testing.T, vm *VM) {
	if c := strings.TrimSpace(sh(t, vm, "cat /host/proc/1/comm")); c != "metainit" {
		t.Errorf("PID 1 is %q, want metainit", c)
	}
	// /sbin is a link to usr/sbin (merged /usr).
	exe := strings.TrimSpace(sh(t, vm, "readlink /host/proc/1/exe"))
	if exe != "/sbin/metainit" && exe != "/usr/sbin/metainit" {
		t.Errorf("PID 1 runs %q, want /sbin/metainit", exe)
	}
	if cl := sh(t, vm, "cat /host/proc/cmdline"); !strings.Contains(" "+cl+" ", " init=/sbin/metainit ") {
		t.Errorf("kernel command line %q lacks init=/sbin/metainit", cl)
	}
	// Pure cgroup2: PID 1 is in the unified hierarchy only (its path shows
	// relative to the console partition's cgroup namespace), and no v1
	// hierarchy is mounted.
	if cg := strings.TrimSpace(sh(t, vm, "cat /host/proc/1/cgroup")); strings.Contains(cg, "\n") || !strings.HasPrefix(cg, "0::/") {
		t.Errorf("/proc/1/cgroup = %q, want a single 0:: line (cgroup2 alone)", cg)
	}
	var cgroupMounts []string
	for _, line := range strings.Split(sh(t, vm, "cat /host/proc/1/mountinfo"), "\n") {
		left, right, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 1 {
			continue
		}
		if rf[0] == "cgroup" || rf[0] == "cgroup2" {
			cgroupMounts = append(cgroupMounts, rf[0]+" on "+lf[4])
		}
	}
	if len(cgroupMounts) != 1 || cgroupMounts[0] != "cgroup2 on /sys/fs/cgroup" {
		t.Errorf("machine cgroup mounts %q, want only cgroup2 on /sys/fs/cgroup", cgroupMounts)
	}
	ctl := sh(t, vm, "cat "+machineRoot+"/sys/fs/cgroup/cgroup.subtree_control")
	t.Logf("PID 1 = metainit (/sbin/metainit); cgroup mounts %q; root subtree_control %q", cgroupMounts, strings.TrimSpace(ctl))
}

// 2. systemd running with no failed unit and runit's services up, side by
// side, both on the machine's network and reaching the gateway.
func (s *scenario) checkSideBySide(t *testing.T, vm *VM) {
	state, rc, err := vm.Agent.Run("metainit exec systemd -- systemctl is-system-running --wait", 3*time.Minute)
	if err != nil || strings.TrimSpace(state) != "running" {
		failed, _, _ := vm.Agent.Run("metainit exec systemd -- systemctl list-units --failed --plain --no-legend", cmdTimeout)
		t.Errorf("systemd partition: is-system-running = %q (rc %d, %v); failed units:\n%s", state, rc, err, failed)
	}
	if failed := strings.TrimSpace(in(t, vm, "systemd", "systemctl list-units --failed --plain --no-legend")); failed != "" {
		t.Errorf("systemd partition has failed units:\n%s", failed)
	}
	sv := strings.TrimSpace(in(t, vm, "runit", "sv status /etc/service/*"))
	for _, line := range strings.Split(sv, "\n") {
		if !strings.HasPrefix(line, "run: ") {
			t.Errorf("runit partition: service not running: %q", line)
		}
	}
	t.Logf("systemd: running, 0 failed units; runit:\n%s", sv)

	// The initramfs's udev gave the NIC its predictable name (ens2 or so).
	nic := strings.TrimSpace(sh(t, vm, "ls "+machineRoot+"/sys/class/net | grep -v '^lo$'"))
	if nic == "" || strings.Contains(nic, "\n") {
		t.Fatalf("machine network interfaces: want one besides lo, got %q", nic)
	}
	machineNet := strings.TrimSpace(sh(t, vm, "readlink /host/proc/1/ns/net"))
	machineMAC := strings.TrimSpace(sh(t, vm, "cat "+machineRoot+"/sys/class/net/"+nic+"/address"))
	put(t, vm, "ping.pl", pingScript)
	for _, p := range []string{"systemd", "runit"} {
		if ns := strings.TrimSpace(in(t, vm, p, "readlink /proc/self/ns/net")); ns != machineNet {
			t.Errorf("%s: network namespace %s, machine's %s", p, ns, machineNet)
		}
		if mac := strings.TrimSpace(in(t, vm, p, "cat /sys/class/net/"+nic+"/address")); mac != machineMAC {
			t.Errorf("%s: %s %q, machine's %q", p, nic, mac, machineMAC)
		}
		// The systemd partition's networkd takes the DHCP lease for the whole
		// machine; wait for its route to 10.0.2.0/24 (at most 60s). qemu's
		// DHCP offers no router when restricted: the gateway is on-link.
		in(t, vm, p, `i=0; until grep -q "^`+nic+`	0002000A	00000000" /proc/net/route; do i=$((i+1)); [ $i -lt 60 ] || { cat /proc/net/route; exit 1; }; sleep 1; done`)
		out := sh(t, vm, `metainit exec `+p+` -- perl -e "$(cat /tmp/ping.pl)"`)
		t.Logf("%s: sees %s (%s) in the machine's %s, route to 10.0.2.0/24; %s", p, nic, machineMAC, machineNet, strings.TrimSpace(out))
	}
}

// pingScript sends ICMP echo requests to qemu's user-mode gateway from a raw
// socket (perl-base is in every Debian; ping is not in minbase).
const pingScript = `use Socket;
socket(my $s, PF_INET, SOCK_RAW, 1) or die "raw socket: $!\n";
my $id = $$ & 0xffff;
my $to = sockaddr_in(0, inet_aton("10.0.2.2"));
for my $seq (1 .. 5) {
	my $pkt = pack("C C n n n a*", 8, 0, 0, $id, $seq, "metainit");
	my $sum = 0; $sum += $_ for unpack("n*", $pkt);
	$sum = ($sum >> 16) + ($sum & 0xffff); $sum += $sum >> 16;
	substr($pkt, 2, 2) = pack("n", ~$sum & 0xffff);
	send($s, $pkt, 0, $to) or die "send: $!\n";
	my $rin = ""; vec($rin, fileno($s), 1) = 1;
	while (select(my $rout = $rin, undef, undef, 1)) {
		my $from = recv($s, my $buf, 1500, 0) or last;
		my (undef, $addr) = sockaddr_in($from);
		my $ihl = (ord($buf) & 15) * 4;
		my ($type, undef, undef, $rid, $rseq) = unpack("C C n n n", substr($buf, $ihl, 8));
		if ($type == 0 && $rid == $id && inet_ntoa($addr) eq "10.0.2.2") {
			print "echo reply from 10.0.2.2 (seq $rseq)\n"; exit 0;
		}
	}
}
die "no echo reply from 10.0.2.2\n";
`

func readInt(t *testing.T, vm *VM, file, key string) int {
	t.Helper()
	out := sh(t, vm, "cat "+file)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if key == "" && len(f) == 1 {
			n, err := strconv.Atoi(f[0])
			if err == nil {
				return n
			}
		}
		if len(f) == 2 && f[0] == key {
			n, err := strconv.Atoi(f[1])
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("%s: no %q in %q", file, key, out)
	return 0
}

// alive checks that every partition is still ready with the same init.
func (s *scenario) alive(t *testing.T, vm *VM, before map[string]status) {
	t.Helper()
	st, err := s.list(t, vm)
	if err != nil {
		t.Fatalf("metainit no longer answers: %v", err)
	}
	for _, n := range partitions {
		if st[n].State != "ready" || st[n].Pid != before[n].Pid {
			t.Errorf("partition %s: %s pid %d, was ready pid %d", n, st[n].State, st[n].Pid, before[n].Pid)
		}
	}
}

// 3a. memory.max: the hog is killed inside the runit partition, nothing else.
func (s *scenario) checkOOM(t *testing.T, vm *VM, before map[string]status) {
	cg := cgroupDir + "/runit"
	if max := strings.TrimSpace(sh(t, vm, "cat "+cg+"/memory.max")); max != "67108864" {
		t.Fatalf("runit memory.max = %s, want 67108864 (config.json linux.resources.memory.limit)", max)
	}
	kills := readInt(t, vm, cg+"/memory.events", "oom_kill")
	out, rc, err := vm.Agent.Run(`metainit exec runit -- perl -e '$x = "x" x (256 << 20); print "survived\n"'`, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if rc != 137 || strings.Contains(out, "survived") {
		t.Errorf("memory hog: exit %d, output %q; want killed by SIGKILL (137)", rc, out)
	}
	after := readInt(t, vm, cg+"/memory.events", "oom_kill")
	if after <= kills {
		t.Errorf("runit memory.events oom_kill %d -> %d: no OOM kill in the partition's cgroup", kills, after)
	}
	if n := readInt(t, vm, cgroupDir+"/systemd/memory.events", "oom_kill"); n != 0 {
		t.Errorf("systemd partition: oom_kill %d, want 0", n)
	}
	s.alive(t, vm, before)
	t.Logf("256 MiB hog in runit (memory.max 64 MiB): exit %d, oom_kill %d -> %d; systemd, console, runit's init and metainit unharmed", rc, kills, after)
}

// bombScript is a fork bomb: every process forks again and again, and so does
// every child, until a fork fails; then it backs off briefly and tries again.
// It stops by itself after 25 s.
const bombScript = `$SIG{CHLD} = "IGNORE"; my $end = time + 25;
while (time < $end) { my $p = fork; select(undef, undef, undef, 0.25) unless defined $p; }
`

// 3b. pids.max: the bomb is held in the runit partition while systemd forks.
func (s *scenario) checkForkBomb(t *testing.T, vm *VM, before map[string]status) {
	cg := cgroupDir + "/runit"
	max := readInt(t, vm, cg+"/pids.max", "")
	if max != 64 {
		t.Fatalf("runit pids.max = %d, want 64 (config.json linux.resources.pids.limit)", max)
	}
	put(t, vm, "bomb.pl", bombScript)
	sh(t, vm, `metainit exec runit -- perl -e "$(cat /tmp/bomb.pl)" > /tmp/bomb.out 2>&1 & echo $! > /tmp/bomb.pid`)
	// Wait until the bomb hits the limit.
	var events int
	for i := 0; ; i++ {
		events = readInt(t, vm, cg+"/pids.events", "max")
		if events > 0 {
			break
		}
		if i == 60 {
			t.Fatalf("fork bomb: pids.events max still 0 after 60s")
		}
		time.Sleep(time.Second)
	}
	current := readInt(t, vm, cg+"/pids.current", "")
	// Meanwhile the systemd partition forks as it pleases.
	forks := in(t, vm, "systemd", `n=0; for i in $(seq 200); do /bin/true && n=$((n+1)); done; echo $n`)
	later := readInt(t, vm, cg+"/pids.events", "max")
	if strings.TrimSpace(forks) != "200" {
		t.Errorf("systemd partition forked %q of 200 times during the bomb", forks)
	}
	if later <= events {
		t.Errorf("pids.events max %d -> %d: the bomb was not pressing on the limit while systemd forked", events, later)
	}
	if current > max {
		t.Errorf("pids.current %d > pids.max %d", current, max)
	}
	sh(t, vm, "wait $(cat /tmp/bomb.pid) 2>/dev/null; true")
	// The bomb is over: the partition forks again.
	var left int
	for i := 0; i < 30; i++ {
		if left = readInt(t, vm, cg+"/pids.current", ""); left < 16 {
			break
		}
		time.Sleep(time.Second)
	}
	if out := strings.TrimSpace(in(t, vm, "runit", "echo forked")); out != "forked" {
		t.Errorf("runit partition cannot fork after the bomb: %q", out)
	}
	s.alive(t, vm, before)
	t.Logf("fork bomb in runit (pids.max %d): pids.current %d at the limit, pids.events max %d -> %d while systemd forked %s times; %d pids left after it stopped",
		max, current, events, later, strings.TrimSpace(forks), left)
}

// 4a. A file in each partition, a broken bundle for boot 2, then metainit
// poweroff: qemu must exit by itself and the root filesystem be clean.
func (s *scenario) writeAndPoweroff(t *testing.T, vm *VM) {
	for _, p := range []string{"systemd", "runit"} {
		in(t, vm, p, "echo "+s.token+" > /root/vm-test-file")
	}
	// Bad input for boot 2: a bundle whose config.json is cut short.
	sh(t, vm, "mkdir -p "+machineRoot+"/etc/metainit/partitions/broken && printf '{\"ociVersion\": \"1.2.0\", \"root\": ' > "+machineRoot+"/etc/metainit/partitions/broken/config.json")
	mark := vm.Serial.Len()
	if out := sh(t, vm, "metainit poweroff"); !strings.Contains(out, "poweroff") {
		t.Errorf("metainit poweroff: %q", out)
	}
	s.waitPoweroff(t, vm, mark, "metainit poweroff")
}

// waitPoweroff waits for qemu to exit by itself after a poweroff request and
// checks that the shutdown was clean: every partition stopped by its own
// protocol, nothing killed, everything unmounted, the filesystem clean.
func (s *scenario) waitPoweroff(t *testing.T, vm *VM, mark int, why string) {
	t.Helper()
	took, err := vm.WaitExit(shutdownTimeout)
	if err != nil {
		t.Fatalf("after %s: %v", why, err)
	}
	lines := vm.Serial.Since(mark)
	s.checkShutdownLog(t, lines, "Power down")
	t.Logf("after %s qemu exited by itself at %.1fs", why, took.Seconds())
	s.checkDiskClean(t)
}

var badShutdownRE = regexp.MustCompile(`stop timed out|stop request failed|sending SIGKILL|busy and not remounted|remount / read-only:|still not gone|PANIC`)

// checkShutdownLog checks the console lines of one shutdown.
func (s *scenario) checkShutdownLog(t *testing.T, lines []Line, end string) {
	t.Helper()
	stopped := map[string]bool{}
	stopRE := regexp.MustCompile(`partition (\S+): stopped by its own protocol`)
	var sawEnd, sawUnmount bool
	for _, l := range lines {
		if m := stopRE.FindStringSubmatch(l.Text); m != nil {
			stopped[m[1]] = true
		}
		if badShutdownRE.MatchString(l.Text) {
			t.Errorf("shutdown: %s", l.Text)
		}
		sawUnmount = sawUnmount || strings.Contains(l.Text, "shutdown: unmount done")
		sawEnd = sawEnd || strings.Contains(l.Text, "reboot: "+end)
	}
	for _, n := range partitions {
		if !stopped[n] {
			t.Errorf("shutdown: partition %s was not stopped by its own protocol", n)
		}
	}
	if !sawUnmount {
		t.Errorf("shutdown: no 'unmount done' on the console")
	}
	if !sawEnd {
		t.Errorf("shutdown: the kernel did not say 'reboot: %s'", end)
	}
}

// checkDiskClean reads the superblock of the run's disk after qemu exited:
// a clean unmount leaves the state clean and no journal to recover.
func (s *scenario) checkDiskClean(t *testing.T) {
	t.Helper()
	out, err := exec.Command("dumpe2fs", "-h", s.disk).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v: %s", err, out)
	}
	var state, features string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Filesystem state:"); ok {
			state = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "Filesystem features:"); ok {
			features = v
		}
	}
	if state != "clean" || strings.Contains(features, "needs_recovery") {
		t.Errorf("root filesystem after poweroff: state %q, features %q: not cleanly unmounted", state, features)
	} else {
		t.Logf("root filesystem after poweroff: state clean, no needs_recovery")
	}
}

// 4b. The files are there, and the kernel and the initramfs's fsck found a
// clean root: no journal replayed, no orphans.
func (s *scenario) checkFilesAndCleanRoot(t *testing.T, vm *VM, mark int) {
	for _, p := range []string{"systemd", "runit"} {
		if got := strings.TrimSpace(in(t, vm, p, "cat /root/vm-test-file")); got != s.token {
			t.Errorf("%s: /root/vm-test-file = %q, want %q", p, got, s.token)
		}
	}
	s.checkCleanMount(t, vm.Serial.Since(mark))
	t.Logf("both files read back after the poweroff and a new boot")
}

// checkCleanMount checks one boot's console: the initramfs's fsck says clean
// and the kernel mounts the root without recovery.
func (s *scenario) checkCleanMount(t *testing.T, lines []Line) {
	t.Helper()
	var fsck, mounted string
	for _, l := range lines {
		switch {
		case strings.Contains(l.Text, "metainit-root: "):
			if fsck == "" {
				fsck = l.Text
			}
		case strings.Contains(l.Text, "EXT4-fs (vda): mounted"):
			if mounted == "" {
				mounted = l.Text
			}
		}
		if strings.Contains(l.Text, "recovering journal") || strings.Contains(l.Text, "EXT4-fs (vda): recovery complete") ||
			strings.Contains(l.Text, "orphan") {
			t.Errorf("unclean root at boot: %s", l.Text)
		}
		if strings.Contains(l.Text, "Linux version") && mounted != "" {
			break // the next boot
		}
	}
	if !strings.Contains(fsck, "metainit-root: clean") {
		t.Errorf("initramfs fsck of / did not report clean: %q", fsck)
	}
	if mounted == "" {
		t.Errorf("no EXT4-fs (vda): mounted line on the console")
	}
	t.Logf("fsck: %s; kernel: %s", strings.TrimSpace(fsck), strings.TrimSpace(mounted))
}

// Bad input: a broken bundle next to the good ones fails alone.
func (s *scenario) checkBrokenBundle(t *testing.T, vm *VM) {
	st, err := s.list(t, vm)
	if err != nil {
		t.Fatal(err)
	}
	b := st["broken"]
	if b.State != "failed" || !strings.Contains(b.Error, "config.json") {
		t.Errorf("broken bundle: state %q, error %q; want failed with an error naming config.json", b.State, b.Error)
	}
	for _, n := range partitions {
		if st[n].State != "ready" {
			t.Errorf("partition %s is %s next to the broken bundle", n, st[n].State)
		}
	}
	t.Logf("broken: %s (%s); console, systemd and runit ready", b.State, b.Error)
}

// 5. Ctrl-Alt-Del from the qemu monitor: every partition stops by its own
// protocol, the machine reboots (the same qemu) and comes back up. Returns
// the console mark of the new boot.
func (s *scenario) checkCtrlAltDel(t *testing.T, vm *VM) int {
	mark := vm.Serial.Len()
	if err := vm.Monitor("sendkey ctrl-alt-delete"); err != nil {
		t.Fatal(err)
	}
	if _, l, err := vm.Serial.Wait(mark, regexp.MustCompile(`metainit: shutdown: reboot requested by`), time.Minute); err != nil {
		t.Fatalf("Ctrl-Alt-Del: %v", err)
	} else {
		t.Logf("%s", l.Text)
	}
	i, _, err := vm.Serial.Wait(mark, regexp.MustCompile(`Linux version`), shutdownTimeout)
	if err != nil {
		t.Fatalf("Ctrl-Alt-Del: the machine did not restart: %v", err)
	}
	s.checkShutdownLog(t, vm.Serial.Since(mark)[:i-mark], "Restarting system")
	s.waitReady(vm, partitions, "broken")
	s.checkCleanMount(t, vm.Serial.Since(i))
	t.Logf("rebooted by Ctrl-Alt-Del; back up with every partition ready")
	return i
}

// 6. The primary partition (on-poweroff=poweroff-machine) powers the machine
// off with its own systemctl poweroff.
func (s *scenario) checkPrimaryPoweroff(t *testing.T, vm *VM, mark int) {
	if mark == 0 {
		t.Fatal("the machine did not come back from Ctrl-Alt-Del")
	}
	from := vm.Serial.Len()
	// The exec ends with the partition: its answer does not matter.
	if err := vm.Agent.Send("metainit exec systemd -- systemctl poweroff </dev/null"); err != nil {
		t.Fatal(err)
	}
	if _, l, err := vm.Serial.Wait(from, regexp.MustCompile(`metainit: shutdown: poweroff requested by partition systemd`), 2*time.Minute); err != nil {
		t.Fatalf("systemctl poweroff in the systemd partition: %v", err)
	} else {
		t.Logf("%s", l.Text)
	}
	took, err := vm.WaitExit(shutdownTimeout)
	if err != nil {
		t.Fatal(err)
	}
	// The systemd partition stopped itself; the others by their own protocols.
	stopped := 0
	for _, l := range vm.Serial.Since(from) {
		if badShutdownRE.MatchString(l.Text) {
			t.Errorf("shutdown: %s", l.Text)
		}
		if strings.Contains(l.Text, "stopped by its own protocol") && !strings.Contains(l.Text, "partition systemd:") {
			stopped++
		}
	}
	if stopped < 2 {
		t.Errorf("console and runit: %d stopped by their own protocol, want 2", stopped)
	}
	s.checkDiskClean(t)
	t.Logf("systemctl poweroff in the systemd partition powered the machine off; qemu exited at %.1fs", took.Seconds())
}

// Bad input: metainit.rescue=1 gives a shell on the serial console.
func (s *scenario) checkRescue(t *testing.T) {
	vm := s.boot("rescue", "init=/sbin/metainit metainit.rescue=1 metainit.skip=console", true)
	if _, _, err := vm.Serial.Wait(0, regexp.MustCompile(`metainit: rescue shell .* started on the console`), bootTimeout); err != nil {
		t.Fatalf("metainit.rescue=1: %v", err)
	}
	answer := regexp.MustCompile(`^RESCUE-42 PID1=metainit$`)
	var err error
	for i := 0; i < 20; i++ {
		mark := vm.Serial.Len()
		if err = vm.Serial.Write("echo RESCUE-$((6*7)) PID1=$(cat /proc/1/comm)\n"); err != nil {
			break
		}
		if _, _, err = vm.Serial.Wait(mark, answer, 3*time.Second); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no answer from a shell on the serial console: %v", err)
	}
	mark := vm.Serial.Len()
	if err := vm.Serial.Write("metainit poweroff\n"); err != nil {
		t.Fatal(err)
	}
	took, err := vm.WaitExit(shutdownTimeout)
	if err != nil {
		t.Fatalf("metainit poweroff from the rescue shell: %v", err)
	}
	if _, _, err := vm.Serial.Wait(mark, regexp.MustCompile(`reboot: Power down`), time.Second); err != nil {
		t.Errorf("rescue boot: %v", err)
	}
	t.Logf("metainit.rescue=1: a shell answered on ttyS0 (echo RESCUE-42, PID 1 = metainit); metainit poweroff from it ended qemu at %.1fs", took.Seconds())
}

// The same image booted twice more, back to back so that both see the same
// load on this machine (TCG speed follows it): with init=/sbin/metainit timed
// to every partition ready (systemd's READY=1 is its startup finished), then
// with init=/lib/systemd/systemd, systemd alone, timed to is-system-running =
// running (a unit in the base prints it on the serial console).
func (s *scenario) compareSystemdAlone(t *testing.T) {
	mi := s.boot("compare-metainit", "init=/sbin/metainit", true)
	for _, n := range partitions {
		if _, _, err := mi.Serial.Wait(0, regexp.MustCompile(`metainit: partition `+n+`: ready in`), bootTimeout); err != nil {
			t.Fatalf("metainit: %v", err)
		}
	}
	time.Sleep(time.Second) // the kmsg copies of those lines, with the kernel's clock
	text, miReady, miKernel := Timeline("comparison boot A: init=/sbin/metainit (the image, snapshot=on), to every partition ready", mi, 0)
	t.Log(text)
	_ = mi.Monitor("quit")
	if _, err := mi.WaitExit(30 * time.Second); err != nil {
		t.Logf("qemu quit: %v", err)
	}

	vm := s.boot("systemd-alone", "init=/lib/systemd/systemd", true)
	re := regexp.MustCompile(`VMREPORT systemd-alone state=(\S+) failed=(\d+)(.*)`)
	i, l, err := vm.Serial.Wait(0, re, bootTimeout)
	if err != nil {
		t.Fatalf("systemd alone: %v", err)
	}
	m := re.FindStringSubmatch(l.Text)
	kstart := findLine(vm.Serial.Since(0), "Linux version")
	t.Logf("comparison boot B: init=/lib/systemd/systemd: is-system-running=%s, %s failed units, %.1fs after qemu start (%.1fs after the kernel's first line);%s",
		m[1], m[2], l.At.Seconds(), (l.At - kstart.At).Seconds(), m[3])
	if m[1] != "running" || m[2] != "0" {
		for _, x := range vm.Serial.Since(i + 1) {
			t.Logf("  %s", x.Text)
		}
		t.Errorf("systemd alone did not reach running with 0 failed units")
	}
	t.Logf("COMPARISON (same image, back to back, %s): init=/sbin/metainit: systemd, runit and console partitions ready %.1fs after qemu start (%.1fs after the kernel's first line); init=/lib/systemd/systemd: running %.1fs after qemu start (%.1fs after the kernel's first line). Boot 1 of this run: every partition ready at %.1fs (%.1fs).",
		s.accel, miReady.Seconds(), miKernel.Seconds(), l.At.Seconds(), (l.At - kstart.At).Seconds(), s.metainitReady.Seconds(), s.metainitKernel.Seconds())
	_ = vm.Monitor("quit")
	if _, err := vm.WaitExit(30 * time.Second); err != nil {
		t.Logf("qemu quit: %v", err)
	}
}

func findLine(lines []Line, sub string) Line {
	for _, l := range lines {
		if strings.Contains(l.Text, sub) {
			return l
		}
	}
	return Line{}
}
