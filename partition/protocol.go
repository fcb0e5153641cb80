package partition

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Action is what metainit asks of a partition's init: the same three requests
// a machine's init understands.
type Action int

const (
	ActionPoweroff Action = iota // stop everything; the partition stays stopped
	ActionReboot                 // stop everything; the partition starts again
	ActionHalt                   // like poweroff
)

func (a Action) String() string {
	switch a {
	case ActionPoweroff:
		return "poweroff"
	case ActionReboot:
		return "reboot"
	case ActionHalt:
		return "halt"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// initTarget is what a protocol needs of a running init: a way to signal it
// and its PID on the host (for /proc/PID/root, the init's own view of its
// filesystem).
type initTarget interface {
	Signal(sig syscall.Signal) error
	HostPID() int
}

// A Protocol asks an init, in its own language, to do an Action. It returns
// once the request is delivered; the init's exit tells how it went.
type Protocol interface {
	Request(t initTarget, a Action) error
	String() string
}

// ProtocolFor returns the protocol of a kind. stopSignal is used by generic.
func ProtocolFor(k Kind, stopSignal syscall.Signal) Protocol {
	switch k {
	case KindSystemd:
		// systemd(1), "Signals": SIGRTMIN+3 halt, +4 poweroff, +5 reboot.
		// SIGTERM only makes it re-execute itself.
		return signalProtocol{name: "systemd", halt: sigRTMIN + 3, poweroff: sigRTMIN + 4, reboot: sigRTMIN + 5}
	case KindBusybox:
		// busybox init/init.c: SIGUSR1 halt, SIGUSR2 poweroff, SIGTERM reboot.
		return signalProtocol{name: "busybox", halt: unix.SIGUSR1, poweroff: unix.SIGUSR2, reboot: unix.SIGTERM}
	case KindRunit:
		return runitProtocol{}
	case KindSysvinit:
		return sysvinitProtocol{}
	}
	return signalProtocol{name: "generic", halt: stopSignal, poweroff: stopSignal, reboot: stopSignal}
}

// sigRTMIN is glibc's SIGRTMIN (the kernel's 32 and 33 are reserved by libc);
// systemd's SIGRTMIN+n means 34+n.
const sigRTMIN = syscall.Signal(34)

type signalProtocol struct {
	name                   string
	halt, poweroff, reboot syscall.Signal
}

func (p signalProtocol) String() string {
	return fmt.Sprintf("%s (signals: halt %s, poweroff %s, reboot %s)", p.name,
		SignalName(p.halt), SignalName(p.poweroff), SignalName(p.reboot))
}

func (p signalProtocol) Request(t initTarget, a Action) error {
	sig := p.poweroff
	switch a {
	case ActionReboot:
		sig = p.reboot
	case ActionHalt:
		sig = p.halt
	}
	return t.Signal(sig)
}

// runitProtocol is what runit-init 0 and 6 do: runit(8) enters stage 3 on
// SIGCONT when its stopit file is executable by its owner, and reboots rather
// than halts when the reboot file is too. Debian patches the files to
// /run/runit.stopit and /run/runit.reboot (upstream: /etc/runit/stopit).
type runitProtocol struct{}

func (runitProtocol) String() string {
	return "runit (chmod 100 /run/runit.stopit [and /run/runit.reboot], then SIGCONT)"
}

func (runitProtocol) Request(t initTarget, a Action) error {
	rebootMode := uint32(0)
	if a == ActionReboot {
		rebootMode = 0o100
	}
	var errs []error
	for _, dir := range []string{"/run/runit.", "/etc/runit/"} {
		err := chmodInRoot(t.HostPID(), dir+"reboot", rebootMode, true)
		if err == nil {
			err = chmodInRoot(t.HostPID(), dir+"stopit", 0o100, true)
		}
		if err == nil {
			return t.Signal(unix.SIGCONT)
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("runit: no stopit file: %v", errs)
}

// sysvinitProtocol writes a runlevel request to /run/initctl, as telinit does
// (sysvinit's initreq.h: struct init_request, 384 bytes).
type sysvinitProtocol struct{}

func (sysvinitProtocol) String() string {
	return "sysvinit (runlevel 0/6 request on /run/initctl)"
}

const (
	initMagic      = 0x03091969
	initCmdRunlvl  = 1
	initRequestLen = 384
)

func (sysvinitProtocol) Request(t initTarget, a Action) error {
	level := byte('0')
	if a == ActionReboot {
		level = '6'
	}
	req := make([]byte, initRequestLen)
	binary.NativeEndian.PutUint32(req[0:], initMagic)
	binary.NativeEndian.PutUint32(req[4:], initCmdRunlvl)
	binary.NativeEndian.PutUint32(req[8:], uint32(level))
	// sleeptime (req[12:16]) 0: sysvinit's default of 5s between TERM and KILL applies.
	var errs []error
	for _, fifo := range []string{"/run/initctl", "/dev/initctl"} {
		f, err := openInRoot(t.HostPID(), fifo, unix.O_WRONLY|unix.O_NONBLOCK, unix.S_IFIFO)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_, err = f.Write(req)
		f.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", fifo, err))
	}
	return fmt.Errorf("sysvinit: %v", errs)
}

// openInRoot opens name as the init with host PID pid sees it, with every
// symlink resolved inside that root (openat2 RESOLVE_IN_ROOT): a partition's
// filesystem is not trusted, and /proc/PID/root/... followed naively would
// let an absolute symlink lead to the host's files. The opened file must be of
// type wantType (S_IFREG, S_IFIFO).
func openInRoot(pid int, name string, flags int, wantType uint32) (*os.File, error) {
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root of pid %d: %w", pid, err)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, name, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != wantType {
		f.Close()
		return nil, fmt.Errorf("%s: unexpected file type %#o", name, st.Mode&unix.S_IFMT)
	}
	return f, nil
}

// chmodInRoot sets the permission bits of a regular file inside pid's root.
func chmodInRoot(pid int, name string, mode uint32, mustExist bool) error {
	f, err := openInRoot(pid, name, unix.O_RDONLY|unix.O_NONBLOCK, unix.S_IFREG)
	if err != nil {
		if !mustExist && os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	if err := unix.Fchmod(int(f.Fd()), mode); err != nil {
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	return nil
}
