// Package vm boots the metainit disk image (tests/vm/image.sh) in qemu the
// way a boot loader would (Debian's kernel and initrd, root on a virtio disk)
// and drives it from outside: the serial console is read line by line, a
// shell on a virtio console (hvc0, in the image's console partition) runs
// commands, and the qemu monitor presses keys. vm_test.go is the scenario.
package vm

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes one qemu run.
type Config struct {
	Name     string // names the log files
	ImageDir string // vmlinuz, initrd.img (image.sh output)
	Disk     string // raw disk image to boot
	Snapshot bool   // discard the disk writes of this run
	Append   string // kernel command line
	Accel    string // kvm or tcg
	WorkDir  string // sockets and logs
	MemoryMB int
	CPUs     int
	Logf     func(format string, args ...any)
}

// VM is one running qemu process.
type VM struct {
	cfg     Config
	cmd     *exec.Cmd
	Start   time.Time
	Serial  *Lines // ttyS0: kernel, initramfs and metainit output
	Agent   *Shell // hvc0: a shell in the console partition
	monitor net.Conn
	monMu   sync.Mutex

	exited  chan struct{}
	exitErr error
	exitAt  time.Duration // since Start
	killed  bool
}

// Boot starts qemu and connects its serial console, virtio console and
// monitor. Every socket is ours (qemu connects as a client), so nothing of
// the boot is missed.
func Boot(cfg Config) (*VM, error) {
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 1536
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	dir := cfg.WorkDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen := func(name string) (*net.UnixListener, string, error) {
		path := filepath.Join(dir, cfg.Name+"-"+name+".sock")
		_ = os.Remove(path)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		return ln, path, err
	}
	serLn, serPath, err := listen("serial")
	if err != nil {
		return nil, err
	}
	defer serLn.Close()
	agLn, agPath, err := listen("agent")
	if err != nil {
		return nil, err
	}
	defer agLn.Close()
	monLn, monPath, err := listen("monitor")
	if err != nil {
		return nil, err
	}
	defer monLn.Close()

	drive := "file=" + cfg.Disk + ",format=raw,if=virtio,cache=writeback"
	if cfg.Snapshot {
		drive += ",snapshot=on"
	}
	args := []string{
		"-name", "metainit-" + cfg.Name,
		"-accel", cfg.Accel,
		"-cpu", map[string]string{"kvm": "host", "tcg": "max"}[cfg.Accel],
		"-m", strconv.Itoa(cfg.MemoryMB), "-smp", strconv.Itoa(cfg.CPUs),
		"-display", "none", "-nodefaults", "-no-user-config",
		"-kernel", filepath.Join(cfg.ImageDir, "vmlinuz"),
		"-initrd", filepath.Join(cfg.ImageDir, "initrd.img"),
		"-append", cfg.Append,
		"-drive", drive,
		// User-mode networking, restricted: the guest reaches the gateway
		// (qemu itself) and nothing beyond it.
		"-netdev", "user,id=net0,restrict=on",
		"-device", "virtio-net-pci,netdev=net0",
		"-chardev", "socket,id=ser0,path=" + serPath,
		"-serial", "chardev:ser0",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent,path=" + agPath,
		"-device", "virtconsole,chardev=agent",
		"-chardev", "socket,id=mon,path=" + monPath,
		"-mon", "chardev=mon,mode=readline",
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	qlog, err := os.Create(filepath.Join(dir, cfg.Name+"-qemu.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = qlog, qlog
	// qemu must not outlive the test, whatever ends the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	vm := &VM{cfg: cfg, cmd: cmd, exited: make(chan struct{})}
	vm.Start = time.Now()
	if err := cmd.Start(); err != nil {
		qlog.Close()
		return nil, fmt.Errorf("qemu: %w", err)
	}
	go func() {
		vm.exitErr = cmd.Wait()
		vm.exitAt = time.Since(vm.Start)
		qlog.Close()
		close(vm.exited)
	}()
	cfg.Logf("%s: qemu pid %d: %s", cfg.Name, cmd.Process.Pid, strings.Join(cmd.Args, " "))

	accept := func(ln *net.UnixListener) (net.Conn, error) {
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := ln.Accept()
			ch <- res{c, err}
		}()
		select {
		case r := <-ch:
			return r.c, r.err
		case <-vm.exited:
			return nil, fmt.Errorf("qemu exited before connecting (%v); see %s-qemu.log", vm.exitErr, cfg.Name)
		case <-time.After(30 * time.Second):
			return nil, errors.New("qemu did not connect within 30s")
		}
	}
	fail := func(err error) (*VM, error) {
		vm.Kill()
		return nil, err
	}
	ser, err := accept(serLn)
	if err != nil {
		return fail(fmt.Errorf("serial: %w", err))
	}
	serLog, err := os.Create(filepath.Join(dir, cfg.Name+"-serial.log"))
	if err != nil {
		return fail(err)
	}
	vm.Serial = NewLines(ser, serLog, vm.Start)
	ag, err := accept(agLn)
	if err != nil {
		return fail(fmt.Errorf("virtio console: %w", err))
	}
	agLog, err := os.Create(filepath.Join(dir, cfg.Name+"-agent.log"))
	if err != nil {
		return fail(err)
	}
	vm.Agent = NewShell(ag, agLog, vm.exited)
	mon, err := accept(monLn)
	if err != nil {
		return fail(fmt.Errorf("monitor: %w", err))
	}
	vm.monitor = mon
	go func() { // the monitor's replies are not needed; keep its buffer empty
		sc := bufio.NewScanner(mon)
		for sc.Scan() {
		}
	}()
	return vm, nil
}

// Monitor sends one human-monitor command (sendkey ctrl-alt-delete, quit).
func (vm *VM) Monitor(cmd string) error {
	vm.monMu.Lock()
	defer vm.monMu.Unlock()
	_ = vm.monitor.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := vm.monitor.Write([]byte(cmd + "\n"))
	return err
}

// Exited is closed when qemu has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// WaitExit waits for qemu to exit by itself and reports how it ended.
func (vm *VM) WaitExit(timeout time.Duration) (time.Duration, error) {
	select {
	case <-vm.exited:
		if vm.exitErr != nil {
			return time.Since(vm.Start), fmt.Errorf("qemu: %v", vm.exitErr)
		}
		return time.Since(vm.Start), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("qemu still running after %s", timeout)
	}
}

// Kill ends this VM's own qemu process (and no other), then closes the
// connections. It is safe to call more than once and after qemu exited.
func (vm *VM) Kill() {
	select {
	case <-vm.exited:
	default:
		vm.killed = true
		_ = vm.cmd.Process.Kill()
		select {
		case <-vm.exited:
		case <-time.After(10 * time.Second):
		}
	}
	if vm.Serial != nil {
		vm.Serial.Close()
	}
	if vm.Agent != nil {
		vm.Agent.Close()
	}
	if vm.monitor != nil {
		vm.monitor.Close()
	}
}

// DetectAccel returns "kvm" when /dev/kvm can boot Debian's kernel, else
// "tcg". Opening /dev/kvm is not enough: on some nested hosts KVM runs the
// BIOS and then hangs in the kernel's early boot, so the probe boots the
// kernel (no disk) and waits for its first line.
func DetectAccel(imageDir, workDir string) (string, string) {
	if a := os.Getenv("METAINIT_VM_ACCEL"); a != "" {
		return a, "METAINIT_VM_ACCEL"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg", fmt.Sprintf("/dev/kvm: %v", err)
	}
	f.Close()
	out := filepath.Join(workDir, "kvm-probe.log")
	_ = os.Remove(out)
	cmd := exec.Command("qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256",
		"-display", "none", "-nodefaults", "-no-user-config", "-no-reboot",
		"-serial", "file:"+out, "-kernel", filepath.Join(imageDir, "vmlinuz"),
		"-append", "console=ttyS0 panic=-1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "tcg", fmt.Sprintf("kvm probe: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-done
	}()
	booted := func() bool {
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "Linux version")
	}
	deadline := time.After(8 * time.Second)
	for {
		select {
		case <-deadline:
			return "tcg", "/dev/kvm opens, but under KVM the kernel printed nothing within 8s"
		case <-done:
			if booted() {
				return "kvm", "/dev/kvm boots the kernel"
			}
			msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
			return "tcg", "under KVM qemu failed: " + msg
		case <-time.After(100 * time.Millisecond):
			if booted() {
				return "kvm", "/dev/kvm boots the kernel"
			}
		}
	}
}
