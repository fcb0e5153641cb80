package partition

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// AnnotationPrefix starts every setting metainit reads from config.json's
// annotations: the OCI runtime spec has no field for how an init is stopped,
// restarted or ordered, and annotations are the spec's place for such data.
const AnnotationPrefix = "org.metainit."

// The annotations metainit understands. Unknown keys under the prefix are an
// error, so a typo cannot silently fall back to a default.
const (
	AnnInit         = AnnotationPrefix + "init"          // systemd|runit|sysvinit|busybox|generic
	AnnOrder        = AnnotationPrefix + "order"         // integer, lower starts first
	AnnRestart      = AnnotationPrefix + "restart"       // no|on-failure|always
	AnnStopTimeout  = AnnotationPrefix + "stop-timeout"  // Go duration
	AnnStopSignal   = AnnotationPrefix + "stop-signal"   // generic kind only
	AnnOnPoweroff   = AnnotationPrefix + "on-poweroff"   // stop|poweroff-machine
	AnnOnReboot     = AnnotationPrefix + "on-reboot"     // restart|reboot-machine
	AnnAfter        = AnnotationPrefix + "after"         // comma-separated partition names
	AnnReadyTimeout = AnnotationPrefix + "ready-timeout" // Go duration
	AnnRestartDelay = AnnotationPrefix + "restart-delay" // Go duration: the first restart delay
)

// RestartPolicy says what happens when a partition's init exits on its own.
type RestartPolicy string

const (
	RestartNo        RestartPolicy = "no"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartAlways    RestartPolicy = "always"
)

// Settings are a partition's metainit-specific settings, read from annotations.
type Settings struct {
	Kind         Kind // "" means: detect from the rootfs
	Order        int
	Restart      RestartPolicy
	StopTimeout  time.Duration
	ReadyTimeout time.Duration
	RestartDelay time.Duration // first delay; it doubles up to restartDelayMax
	StopSignal   syscall.Signal
	// PoweroffMachine: the init powering itself off powers off the machine.
	PoweroffMachine bool
	// RebootMachine: the init rebooting itself reboots the machine.
	RebootMachine bool
	After         []string
}

// DefaultStopTimeout bounds how long a partition's own shutdown may take
// before metainit kills it.
const DefaultStopTimeout = 30 * time.Second

// DefaultReadyTimeout bounds how long a partition may take to become ready
// before the partitions ordered after it give up waiting.
const DefaultReadyTimeout = 2 * time.Minute

// parseSettings reads the org.metainit.* annotations. Every error names the
// annotation and the value it refused.
func parseSettings(ann map[string]string) (Settings, error) {
	s := Settings{
		Restart:      RestartOnFailure,
		StopTimeout:  DefaultStopTimeout,
		ReadyTimeout: DefaultReadyTimeout,
		RestartDelay: restartDelayMin,
		StopSignal:   unix.SIGTERM,
	}
	for key, val := range ann {
		if !strings.HasPrefix(key, AnnotationPrefix) {
			continue
		}
		bad := func(why string) error {
			return fmt.Errorf("annotations[%q]: %q %s", key, val, why)
		}
		switch key {
		case AnnInit:
			k, err := ParseKind(val)
			if err != nil {
				return s, bad("is not an init kind (want " + kindList() + ")")
			}
			s.Kind = k
		case AnnOrder:
			n, err := strconv.Atoi(val)
			if err != nil {
				return s, bad("is not an integer")
			}
			s.Order = n
		case AnnRestart:
			switch p := RestartPolicy(val); p {
			case RestartNo, RestartOnFailure, RestartAlways:
				s.Restart = p
			default:
				return s, bad("is not a restart policy (want no, on-failure or always)")
			}
		case AnnStopTimeout, AnnReadyTimeout, AnnRestartDelay:
			d, err := time.ParseDuration(val)
			if err != nil || d <= 0 {
				return s, bad("is not a positive duration (for example 30s)")
			}
			switch key {
			case AnnStopTimeout:
				s.StopTimeout = d
			case AnnReadyTimeout:
				s.ReadyTimeout = d
			default:
				s.RestartDelay = d
			}
		case AnnStopSignal:
			sig, err := ParseSignal(val)
			if err != nil {
				return s, bad("is not a signal")
			}
			s.StopSignal = sig
		case AnnOnPoweroff:
			switch val {
			case "stop":
			case "poweroff-machine":
				s.PoweroffMachine = true
			default:
				return s, bad("is not stop or poweroff-machine")
			}
		case AnnOnReboot:
			switch val {
			case "restart":
			case "reboot-machine":
				s.RebootMachine = true
			default:
				return s, bad("is not restart or reboot-machine")
			}
		case AnnAfter:
			for _, n := range strings.Split(val, ",") {
				n = strings.TrimSpace(n)
				if n == "" {
					continue
				}
				if err := ValidName(n); err != nil {
					return s, bad("names an invalid partition: " + err.Error())
				}
				s.After = append(s.After, n)
			}
		default:
			return s, fmt.Errorf("annotations[%q]: unknown metainit annotation", key)
		}
	}
	return s, nil
}

// ParseSignal accepts "SIGTERM", "TERM", "RTMIN+3" or a number.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || 34+n > 64 {
			return 0, fmt.Errorf("bad real-time signal %q", s)
		}
		return syscall.Signal(34 + n), nil
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// SignalName is the inverse of ParseSignal, for messages.
func SignalName(sig syscall.Signal) string {
	if sig >= 34 && sig <= 64 {
		return fmt.Sprintf("SIGRTMIN+%d", int(sig)-34)
	}
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}
