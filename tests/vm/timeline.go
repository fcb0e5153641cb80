package vm

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// An event of the boot timeline: a console line that marks a step.
type event struct {
	re   *regexp.Regexp
	name string // $1 is replaced by the first group
}

var events = []event{
	{regexp.MustCompile(`Linux version`), "kernel started"},
	{regexp.MustCompile(`Run /init as init process`), "initramfs started"},
	{regexp.MustCompile(`metainit-root: clean`), "initramfs: fsck of / clean"},
	{regexp.MustCompile(`metainit: metainit \(PID 1\) starting`), "metainit started (PID 1)"},
	{regexp.MustCompile(`metainit: partition (\S+): ready in`), "partition $1 ready"},
	{regexp.MustCompile(`metainit: shutdown: (\S+ requested by .*)`), "shutdown: $1"},
	{regexp.MustCompile(`metainit: partition (\S+): stopped by its own protocol`), "partition $1 stopped (own protocol)"},
	{regexp.MustCompile(`metainit: shutdown: partitions stopped`), "all partitions stopped"},
	{regexp.MustCompile(`metainit: shutdown: unmount done`), "filesystems unmounted"},
	{regexp.MustCompile(`reboot: Power down`), "poweroff complete (kernel: Power down)"},
	{regexp.MustCompile(`reboot: Restarting system`), "reboot (kernel: Restarting system)"},
}

// kernelStamp is the kernel's own clock on a console line: "[    7.420346] ".
var kernelStamp = regexp.MustCompile(`^\[\s*(\d+\.\d{6})\] `)

type stamp struct {
	name   string
	host   time.Duration // since qemu started
	kernel float64       // kernel clock, -1 if no line carried it
}

// timeline extracts the events of one boot: from the first "Linux version"
// at or after mark to the next one. metainit logs each message to the
// console and to /dev/kmsg; the kmsg copy carries the kernel's clock.
func timeline(lines []Line, mark int) []stamp {
	var out []stamp
	index := map[string]int{}
	kernelSeen := 0
	for _, l := range lines[min(mark, len(lines)):] {
		if strings.Contains(l.Text, "Linux version") {
			kernelSeen++
			if kernelSeen > 1 {
				break
			}
		}
		for _, e := range events {
			m := e.re.FindStringSubmatch(l.Text)
			if m == nil {
				continue
			}
			name := e.name
			if len(m) > 1 {
				name = strings.ReplaceAll(name, "$1", m[1])
			}
			k := -1.0
			if km := kernelStamp.FindStringSubmatch(l.Text); km != nil {
				k, _ = strconv.ParseFloat(km[1], 64)
			}
			if i, ok := index[name]; ok {
				if out[i].kernel < 0 && k >= 0 {
					out[i].kernel = k
				}
				continue
			}
			index[name] = len(out)
			out = append(out, stamp{name: name, host: l.At, kernel: k})
		}
	}
	return out
}

// Timeline formats the timeline of the boot of vm whose console starts at
// line mark, and returns when the last partition became ready (since qemu
// started and since the kernel's first line), zero when none did.
func Timeline(title string, vm *VM, mark int) (text string, ready, sinceKernel time.Duration) {
	st := timeline(vm.Serial.Since(0), mark)
	var b strings.Builder
	fmt.Fprintf(&b, "TIMELINE %s\n", title)
	fmt.Fprintf(&b, "  %9s  %9s  %s\n", "qemu s", "kernel s", "event")
	if mark == 0 {
		fmt.Fprintf(&b, "  %9.3f  %9s  %s\n", 0.0, "-", "qemu started ("+vm.cfg.Accel+")")
	}
	var kernelAt time.Duration
	for _, e := range st {
		k := "-"
		if e.kernel >= 0 {
			k = fmt.Sprintf("%.3f", e.kernel)
		}
		fmt.Fprintf(&b, "  %9.3f  %9s  %s\n", e.host.Seconds(), k, e.name)
		if e.name == "kernel started" {
			kernelAt = e.host
		}
		if strings.HasPrefix(e.name, "partition ") && strings.HasSuffix(e.name, " ready") && e.host > ready {
			ready = e.host
		}
	}
	select {
	case <-vm.Exited():
		if last := st; len(last) > 0 && strings.HasPrefix(last[len(last)-1].name, "poweroff complete") {
			fmt.Fprintf(&b, "  %9.3f  %9s  %s\n", vm.exitAt.Seconds(), "-", "qemu exited")
		}
	default:
	}
	if ready > 0 {
		sinceKernel = ready - kernelAt
	}
	return b.String(), ready, sinceKernel
}
