package partition

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseSettingsDefaults(t *testing.T) {
	s, err := parseSettings(nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Restart != RestartOnFailure || s.StopTimeout != 30*time.Second || s.StopSignal != syscall.SIGTERM || s.Order != 0 {
		t.Errorf("defaults: %+v", s)
	}
}

func TestParseSettingsValues(t *testing.T) {
	s, err := parseSettings(map[string]string{
		AnnInit: "runit", AnnOrder: "-3", AnnRestart: "always", AnnStopTimeout: "1.5s",
		AnnStopSignal: "SIGRTMIN+4", AnnOnPoweroff: "poweroff-machine", AnnOnReboot: "reboot-machine",
		AnnAfter: "a, b,,c", "com.example.other": "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != KindRunit || s.Order != -3 || s.Restart != RestartAlways || s.StopTimeout != 1500*time.Millisecond ||
		s.StopSignal != 38 || !s.PoweroffMachine || !s.RebootMachine || strings.Join(s.After, ",") != "a,b,c" {
		t.Errorf("parsed: %+v", s)
	}
}

func TestParseSettingsErrorsNameAnnotationAndValue(t *testing.T) {
	for key, val := range map[string]string{
		AnnInit: "upstart", AnnOrder: "first", AnnRestart: "sometimes", AnnStopTimeout: "-5s",
		AnnReadyTimeout: "soon", AnnStopSignal: "SIGFOO", AnnOnPoweroff: "explode", AnnOnReboot: "x",
		AnnAfter: "../etc", AnnotationPrefix + "colour": "blue",
	} {
		_, err := parseSettings(map[string]string{key: val})
		if err == nil {
			t.Errorf("%s=%q accepted", key, val)
			continue
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%q: error %q does not name the annotation", key, val, err)
		}
	}
}

func TestSignalNames(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"TERM": 15, "SIGUSR2": 12, "sigint": 2, "9": 9, "RTMIN+3": 37, "SIGRTMIN+5": 39} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", in, got, err, want)
		}
		if back, _ := ParseSignal(SignalName(got)); back != got {
			t.Errorf("SignalName(%d) = %q does not parse back", got, SignalName(got))
		}
	}
	for _, bad := range []string{"", "0", "65", "SIGNOPE", "RTMIN+40"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}
