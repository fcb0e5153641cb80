package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/metainit/metainit/tests/vm"
)

// ---- 8. Real boot -----------------------------------------------------------

// vmCmdline is the kernel command line of the image's boot entry, as
// tests/vm boots it (a boot loader's root=/dev/vda ro).
const vmCmdline = "root=/dev/vda ro console=ttyS0 panic=10"

// rowVM boots the qemu image of tests/vm (the metainit binary under test as
// /sbin/metainit; partitions systemd, runit and a busybox console) from its
// pristine disk (snapshot=on), alternately with init=/sbin/metainit, timed
// from the kernel's first console line to the systemd and runit partitions
// both ready, and with init=/lib/systemd/systemd, systemd alone as the
// machine's init, timed to is-system-running = running (the image's
// comparison unit prints it on the serial console). Same image, same qemu,
// same accelerator, back to back.
func (e *env) rowVM(c cfg, repo string) []row {
	const fig = "real boot (qemu): kernel start → systemd and runit partitions ready"
	peerName := "same image, init=systemd alone → running"
	fail := func(err error) []row {
		return []row{{ID: "8", Figure: fig, Peer: peerName, Goal: "≤ 1.1×", Met: "-", Note: "ERROR: " + err.Error()}}
	}
	cmd := exec.Command(filepath.Join(repo, "tests/vm/image.sh"))
	cmd.Env = append(os.Environ(), "METAINIT_BIN="+e.metainit)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fail(fmt.Errorf("tests/vm/image.sh: %v: %s", err, lastLine(stderr.String())))
	}
	img := strings.TrimSpace(string(out))
	work := filepath.Join(e.work, "vm")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fail(err)
	}
	accel, why := vm.DetectAccel(img, work)
	e.logf("  qemu: %s (%s)", accel, why)
	quiet := func(string, ...any) {}
	boot := func(name, init string) (*vm.VM, error) {
		v, err := vm.Boot(vm.Config{Name: name, ImageDir: img, Disk: filepath.Join(img, "disk.img"), Snapshot: true,
			Append: vmCmdline + " init=" + init, Accel: accel, WorkDir: work, Logf: quiet})
		if err != nil {
			return nil, err
		}
		e.onCleanup(v.Kill)
		return v, nil
	}
	end := func(v *vm.VM) {
		_ = v.Monitor("quit")
		if _, err := v.WaitExit(30 * time.Second); err != nil {
			v.Kill()
		}
	}
	timeout := 3 * time.Minute
	kernelStart := regexp.MustCompile(`Linux version`)
	steps := map[string][]float64{} // metainit boot: since the kernel's first line
	metainit := func(i int) (time.Duration, error) {
		v, err := boot(fmt.Sprintf("metainit-%d", i), "/sbin/metainit")
		if err != nil {
			return 0, err
		}
		defer end(v)
		_, k, err := v.Serial.Wait(0, kernelStart, timeout)
		if err != nil {
			return 0, err
		}
		_, m, err := v.Serial.Wait(0, regexp.MustCompile(`metainit: metainit \(PID 1\) starting`), timeout)
		if err != nil {
			return 0, err
		}
		steps["metainit started"] = append(steps["metainit started"], ms(m.At-k.At))
		var last time.Duration
		for _, p := range []string{"systemd", "runit"} {
			_, l, err := v.Serial.Wait(0, regexp.MustCompile(`metainit: partition `+p+`: ready in`), timeout)
			if err != nil {
				return 0, fmt.Errorf("metainit boot: partition %s: %w", p, err)
			}
			steps[p+" ready"] = append(steps[p+" ready"], ms(l.At-k.At))
			last = max(last, l.At)
		}
		return last - k.At, nil
	}
	report := regexp.MustCompile(`VMREPORT systemd-alone state=(\S+) failed=(\d+)`)
	systemd := func(i int) (time.Duration, error) {
		v, err := boot(fmt.Sprintf("systemd-%d", i), "/lib/systemd/systemd")
		if err != nil {
			return 0, err
		}
		defer end(v)
		_, k, err := v.Serial.Wait(0, kernelStart, timeout)
		if err != nil {
			return 0, err
		}
		_, l, err := v.Serial.Wait(0, report, timeout)
		if err != nil {
			return 0, fmt.Errorf("systemd alone: %w", err)
		}
		if m := report.FindStringSubmatch(l.Text); m[1] != "running" || m[2] != "0" {
			return 0, fmt.Errorf("systemd alone: is-system-running %s, %s failed units", m[1], m[2])
		}
		return l.At - k.At, nil
	}
	var mi, sd []float64
	for i := 0; i < c.nVM; i++ {
		for k := 0; k < 2; k++ {
			var d time.Duration
			var err error
			if (i+k)%2 == 0 {
				if d, err = metainit(i); err == nil {
					mi = append(mi, d.Seconds())
				}
			} else if d, err = systemd(i); err == nil {
				sd = append(sd, d.Seconds())
			}
			if err != nil {
				return fail(err)
			}
		}
	}
	return []row{ratioRow(row{ID: "8", Figure: fig, Unit: "s", Metainit: summarize(mi), Peer: peerName, PeerStat: ptr(summarize(sd)),
		Goal: "≤ 1.1×", Note: fmt.Sprintf("metainit boot, medians since the kernel's first line: metainit started %.1f s, systemd partition ready %.1f s, runit partition ready %.1f s. qemu %s (%s), 2 vCPU, the tests/vm image from its pristine disk, boots alternated; clock: serial console lines as qemu prints them",
			summarize(steps["metainit started"]).Median/1000, summarize(steps["systemd ready"]).Median/1000, summarize(steps["runit ready"]).Median/1000, accel, why)}, 1.1)}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
