package partition

import (
	"encoding/binary"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Readiness, per kind:
//   systemd   READY=1 on $NOTIFY_SOCKET (see notify.go)
//   runit     runsvdir runs: stage 2 is up
//   sysvinit  the default runlevel is reached and its rc scripts are done
//   busybox   and generic: as soon as the init runs (nothing more can be seen)

// readyPoll is how often sysvinit's readiness is probed (its probe reads
// every process of the partition).
const readyPoll = 50 * time.Millisecond

// runitPoll is how often runit's is: its probe reads two or three small files
// whatever the partition runs, and at 50ms the readiness of a runit that
// boots in ~0.4s was seen 25ms late on average (now ~2ms).
const runitPoll = 5 * time.Millisecond

// watchReady marks the instance ready when its kind's condition holds.
func (p *Partition) watchReady(inst *instance) {
	defer recoverLog(p.logf, "watchReady")
	var probe func(*instance) bool
	every := readyPoll
	switch inst.bundle.Settings.Kind {
	case KindSystemd:
		return // the notify socket does it
	case KindRunit:
		probe, every = runitReady, runitPoll
	case KindSysvinit:
		probe = sysvinitReady
	default:
		p.markReady(inst)
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	deadline := time.After(inst.bundle.Settings.ReadyTimeout)
	for {
		select {
		case <-inst.done:
			return
		case <-deadline:
			p.logf("not ready after %s (still running)", inst.bundle.Settings.ReadyTimeout)
			return
		case <-tick.C:
			if probe(inst) {
				p.markReady(inst)
				return
			}
		}
	}
}

// comms returns the command names of the partition's processes.
func comms(inst *instance) []string {
	pids, err := inst.c.Processes()
	if err != nil {
		return nil
	}
	var out []string
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if err == nil {
			out = append(out, strings.TrimSpace(string(b)))
		}
	}
	return out
}

// runitReady: runit runs stage 2 (/etc/runit/2, which execs runsvdir) as its
// own child, so only the init's children are looked at, not every process of
// the partition (stage 1 runs hundreds of short ones).
func runitReady(inst *instance) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(inst.pid) + "/task/" + strconv.Itoa(inst.pid) + "/children")
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(string(b)) {
		c, err := os.ReadFile("/proc/" + f + "/comm")
		if err == nil && strings.TrimSpace(string(c)) == "runsvdir" {
			return true
		}
	}
	return false
}

// sysvinitReady reads the runlevel from the partition's utmp (RUN_LVL record,
// as runlevel(8) does) and waits until no rc script runs.
func sysvinitReady(inst *instance) bool {
	f, err := openInRoot(inst.pid, "/run/utmp", unix.O_RDONLY|unix.O_NONBLOCK, unix.S_IFREG)
	if err != nil {
		return false
	}
	defer f.Close()
	const recLen, runLvl = 384, 1
	data, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	level := byte(0)
	for off := 0; off+recLen <= len(data); off += recLen {
		if binary.NativeEndian.Uint16(data[off:]) == runLvl {
			level = byte(binary.NativeEndian.Uint32(data[off+4:]) & 0xff)
		}
	}
	if level < '1' || level > '5' {
		return false
	}
	for _, c := range comms(inst) {
		if c == "rc" || c == "startpar" {
			return false
		}
	}
	return true
}
