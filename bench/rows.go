package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// row is one line of the table.
type row struct {
	ID       string  `json:"id"`
	Figure   string  `json:"figure"`
	Unit     string  `json:"unit"`
	Metainit stat    `json:"metainit"`
	Peer     string  `json:"peer,omitempty"`
	PeerStat *stat   `json:"peer_stat,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Goal     string  `json:"goal"`
	Met      string  `json:"met"` // yes, NO, or - (no goal, or not measured)
	Note     string  `json:"note,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// ratioRow fills ratio and verdict for a "≤ limit × peer" goal.
func ratioRow(r row, limit float64) row {
	if r.PeerStat != nil && r.PeerStat.Median > 0 && r.Metainit.N > 0 {
		r.Ratio = r.Metainit.Median / r.PeerStat.Median
		r.Met = verdict(r.Ratio <= limit)
	}
	return r
}

// infoRow fills the ratio of a row without a goal of its own.
func infoRow(r row) row {
	r = ratioRow(r, 0)
	r.Met = "-"
	return r
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func failedRow(id, figure string, err error) row {
	return row{ID: id, Figure: figure, Met: "-", Note: "ERROR: " + err.Error()}
}

// settle is the pause before each measured start (see rowStart).
const settle = 100 * time.Millisecond

// cfg is what a run measures, and how often.
type cfg struct {
	nStart   int   // row 1
	nBoot    int   // rows 2, 3, 4
	nReap    int   // row 7
	orphans  int   // row 7
	nScale   int   // row 6, per size
	sizes    []int // row 6
	memExtra int   // row 5
	nVM      int   // row 8, boots of each kind
	idle     time.Duration
}

// ---- 1. Partition start -------------------------------------------------

func (e *env) rowStart(c cfg, rootfs map[string]string) []row {
	const fig = "partition start: request → init's exec done (busybox sleep)"
	fail := func(err error) []row { return []row{failedRow("1", fig, err)} }
	merged, err := e.overlay("busybox", rootfs["busybox"])
	if err != nil {
		return fail(err)
	}
	spec, err := trivialSpec(merged)
	if err != nil {
		return fail(err)
	}
	in, err := e.bootInstance("start", []partDef{{"t1", spec}})
	if err != nil {
		return fail(err)
	}
	defer in.shutdown()
	if err := in.waitState([]string{"t1"}, 10*time.Second, partition.StateReady); err != nil {
		return fail(err)
	}
	if _, err := in.call("stop", "t1"); err != nil {
		return fail(err)
	}
	rts := []*ociRuntime{
		{name: "crun", bin: "crun", root: filepath.Join(e.work, "crun-state")},
		{name: "runc", bin: "runc", root: filepath.Join(e.work, "runc-state")},
	}
	for _, rt := range rts {
		if err := peerBundle(filepath.Join(e.work, "bundles", rt.name), spec, "/metainit-bench/"+rt.name+"/t1"); err != nil {
			return fail(err)
		}
		e.onCleanup(func() { _ = rt.delete("t1"); e.removeCgroups("metainit-bench/" + rt.name) })
	}
	w, err := newExecWatcher("busybox")
	if err != nil {
		return fail(err)
	}
	defer w.Close()

	// metainit: `metainit start t1` (the CLI round trip, as a user or a
	// script asks), or the same request sent straight to the control socket.
	metainit := func(viaCLI bool) (time.Duration, error) {
		defer stopAll(in, "t1") // a failure shows at the next start
		var out bytes.Buffer
		w.drain()
		t0 := monoNow()
		if viaCLI {
			cmd := in.cli("start", "t1")
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				return 0, fmt.Errorf("metainit start: %v: %s", err, out.String())
			}
		} else if _, err := in.call("start", "t1"); err != nil {
			return 0, err
		}
		ev, err := w.wait("/"+in.cgroup+"/t1", 5*time.Second)
		return ev.Mono - t0, err
	}
	peer := func(rt *ociRuntime) (time.Duration, error) {
		defer rt.delete("t1") // a failure shows at the next run
		errFile := filepath.Join(e.work, rt.name+".err")
		cmd, err := rt.runCmd(filepath.Join(e.work, "bundles", rt.name), "t1", errFile)
		if err != nil {
			return 0, err
		}
		w.drain()
		t0 := monoNow()
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(errFile)
			return 0, fmt.Errorf("%s run: %v: %s", rt.name, err, strings.TrimSpace(string(b)))
		}
		ev, err := w.wait("/metainit-bench/"+rt.name+"/t1", 5*time.Second)
		return ev.Mono - t0, err
	}
	series := map[string][]float64{}
	steps := []struct {
		name string
		f    func() (time.Duration, error)
	}{
		{"metainit", func() (time.Duration, error) { return metainit(true) }},
		{"metainit-socket", func() (time.Duration, error) { return metainit(false) }},
		{"crun", func() (time.Duration, error) { return peer(rts[0]) }},
		{"runc", func() (time.Duration, error) { return peer(rts[1]) }},
	}
	const warmup = 3
	for i := 0; i < warmup+c.nStart; i++ {
		for k := range steps {
			s := steps[(i+k)%len(steps)] // rotate the order: drift hits all alike
			// Let the previous step's teardown (a container destroyed, its
			// cgroups removed) finish before the next start.
			time.Sleep(settle)
			d, err := s.f()
			if err != nil {
				return fail(fmt.Errorf("%s: %w", s.name, err))
			}
			if i >= warmup {
				series[s.name] = append(series[s.name], ms(d))
			}
		}
	}
	mi, sock := summarize(series["metainit"]), summarize(series["metainit-socket"])
	cr, rc := summarize(series["crun"]), summarize(series["runc"])
	note := "metainit: `metainit start` CLI round trip; crun/runc: `run -d`; same config.json, rootfs, cgroup depth; clock stops at the kernel's exec event of the init"
	return []row{
		ratioRow(row{ID: "1a", Figure: fig, Unit: "ms", Metainit: mi, Peer: "crun run -d", PeerStat: &cr, Goal: "≤ 1.0× crun", Note: note}, 1.0),
		infoRow(row{ID: "1b", Figure: fig, Unit: "ms", Metainit: mi, Peer: "runc run -d", PeerStat: &rc, Goal: "(info)", Note: "same run as 1a"}),
		infoRow(row{ID: "1c", Figure: "partition start, request sent to the control socket (no CLI)", Unit: "ms", Metainit: sock, Peer: "crun run -d", PeerStat: &cr, Goal: "(info)", Note: "what PID 1 itself pays per start, e.g. at boot"}),
	}
}

// ---- 2, 3, 4. systemd to running, side by side, stop --------------------

// sysRun is one boot and stop of the systemd rootfs.
type sysRun struct {
	boot, stop time.Duration
	state      string // is-system-running after READY=1
}

func (e *env) rowsSystemd(c cfg, rootfs map[string]string) []row {
	fig2 := "systemd to running: start request → READY=1 (is-system-running checked)"
	fig3 := "side by side: systemd + runit started together → both ready"
	fig4 := "partition stop: systemd clean poweroff, request → init exited"
	fail := func(err error) []row {
		return []row{failedRow("2", fig2, err), failedRow("3", fig3, err), failedRow("4", fig4, err)}
	}
	sysSpec, runitSpec, err := e.systemdRunitSpecs(rootfs)
	if err != nil {
		return fail(err)
	}
	nsRoot, err := e.overlay("systemd-nspawn", rootfs["systemd"])
	if err != nil {
		return fail(err)
	}
	in, err := e.bootInstance("systemd", []partDef{{"sys", sysSpec}, {"runit", runitSpec}})
	if err != nil {
		return fail(err)
	}
	defer in.shutdown()
	// The boot itself is the warm-up (first boot of a fresh overlay).
	if err := in.waitState(nil, 2*time.Minute, partition.StateReady); err != nil {
		return fail(err)
	}
	if err := stopAll(in, "sys", "runit"); err != nil {
		return fail(err)
	}

	metainit := func() (sysRun, error) {
		var r sysRun
		var out bytes.Buffer
		t0 := time.Now()
		cmd := in.cli("start", "sys")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return r, fmt.Errorf("metainit start sys: %v: %s", err, out.String())
		}
		ready, err := readyAt(in, "sys", time.Minute)
		if err != nil {
			return r, err
		}
		r.boot = ready.Sub(t0)
		st, err := in.cli("exec", "sys", "--", "systemctl", "is-system-running").Output()
		r.state = strings.TrimSpace(string(st))
		if r.state == "" && err != nil {
			r.state = err.Error()
		}
		t1 := monoNow()
		cmd = in.cli("stop", "sys")
		out.Reset()
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return r, fmt.Errorf("metainit stop sys: %v: %s", err, out.String())
		}
		r.stop = monoNow() - t1
		s, err := in.status("sys")
		if err != nil {
			return r, err
		}
		if s.State != partition.StateStopped || !strings.Contains(s.LastExit, "SIGINT") {
			return r, fmt.Errorf("sys after stop: %s, last exit %q (want stopped, powered off)", s.State, s.LastExit)
		}
		return r, nil
	}
	nspawnRun := func() (sysRun, error) {
		var r sysRun
		n, err := e.prepareNspawn("bench-sys", nsRoot, "metainit-bench/nspawn-sys")
		if err != nil {
			return r, err
		}
		defer n.stop()
		t0 := n.goNow()
		t1, err := n.waitReady(time.Minute)
		if err != nil {
			return r, err
		}
		r.boot = t1 - t0
		if n.leader > 0 {
			st, err := exec.Command("nsenter", "--target", strconv.Itoa(n.leader), "--all", "systemctl", "is-system-running").Output()
			r.state = strings.TrimSpace(string(st))
			if r.state == "" && err != nil {
				r.state = err.Error()
			}
		}
		r.stop, err = n.stopTimed(time.Minute)
		return r, err
	}
	// Warm-up of nspawn's overlay: its first boot.
	if _, err := nspawnRun(); err != nil {
		return fail(fmt.Errorf("nspawn warm-up: %w", err))
	}

	var miBoot, miStop, nsBoot, nsStop []float64
	states := map[string]int{}
	for i := 0; i < c.nBoot; i++ {
		order := []string{"metainit", "nspawn"}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, who := range order {
			var r sysRun
			var err error
			if who == "metainit" {
				r, err = metainit()
			} else {
				r, err = nspawnRun()
			}
			if err != nil {
				return fail(fmt.Errorf("%s: %w", who, err))
			}
			states[who+":"+r.state]++
			if who == "metainit" {
				miBoot, miStop = append(miBoot, ms(r.boot)), append(miStop, ms(r.stop))
			} else {
				nsBoot, nsStop = append(nsBoot, ms(r.boot)), append(nsStop, ms(r.stop))
			}
		}
	}
	stateNote := describeStates(states)

	// 3: both together, and systemd alone, by the same means (two start
	// requests sent at once to the control socket), interleaved.
	together := func(names ...string) (time.Duration, error) {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(names))
		for i, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = in.call("start", n)
			}()
		}
		wg.Wait()
		var last time.Time
		for i, n := range names {
			if errs[i] != nil {
				return 0, errs[i]
			}
			t, err := readyAt(in, n, time.Minute)
			if err != nil {
				return 0, err
			}
			if t.After(last) {
				last = t
			}
		}
		d := last.Sub(t0)
		return d, stopAll(in, names...)
	}
	var both, alone, runitAlone []float64
	variants := [][]string{{"sys", "runit"}, {"sys"}, {"runit"}}
	for i := 0; i < c.nBoot; i++ {
		for k := range variants {
			names := variants[(i+k)%len(variants)]
			d, err := together(names...)
			if err != nil {
				r := fail(err)
				return []row{
					ratioRow(row{ID: "2", Figure: fig2, Unit: "ms", Metainit: summarize(miBoot), Peer: "systemd-nspawn --boot", PeerStat: ptr(summarize(nsBoot)), Goal: "≤ 0.8× nspawn", Note: stateNote}, 0.8),
					r[1],
					ratioRow(row{ID: "4", Figure: fig4, Unit: "ms", Metainit: summarize(miStop), Peer: "systemd-nspawn (SIGTERM)", PeerStat: ptr(summarize(nsStop)), Goal: "≤ 0.8× nspawn"}, 0.8),
				}
			}
			switch len(names) {
			case 2:
				both = append(both, ms(d))
			default:
				if names[0] == "sys" {
					alone = append(alone, ms(d))
				} else {
					runitAlone = append(runitAlone, ms(d))
				}
			}
		}
	}
	slower := summarize(alone)
	if r := summarize(runitAlone); r.Median > slower.Median {
		slower = r
	}
	return []row{
		ratioRow(row{ID: "2", Figure: fig2, Unit: "ms", Metainit: summarize(miBoot), Peer: "systemd-nspawn --boot", PeerStat: ptr(summarize(nsBoot)),
			Goal: "≤ 0.8× nspawn", Note: "metainit: `metainit start sys`; nspawn: exec of systemd-nspawn; both until systemd's READY=1. " + stateNote}, 0.8),
		ratioRow(row{ID: "3", Figure: fig3, Unit: "ms", Metainit: summarize(both), Peer: "metainit, systemd alone", PeerStat: ptr(summarize(alone)),
			Goal: "≤ 1.05× alone", Note: fmt.Sprintf("two start requests at once on the control socket vs one; runit is ready when runsvdir runs (stage 2); runit alone: %s", fmtStat(summarize(runitAlone), "ms"))}, 1.05),
		infoRow(row{ID: "3b", Figure: "side by side vs the slower of the two started alone", Unit: "ms", Metainit: summarize(both), Peer: "metainit, slower alone", PeerStat: &slower,
			Goal: "(info)", Note: "what running them together costs: both ready vs max(systemd alone, runit alone)"}),
		ratioRow(row{ID: "4", Figure: fig4, Unit: "ms", Metainit: summarize(miStop), Peer: "systemd-nspawn (SIGTERM)", PeerStat: ptr(summarize(nsStop)),
			Goal: "≤ 0.8× nspawn", Note: "both ask systemd for poweroff (SIGRTMIN+4); metainit: `metainit stop sys` returns once the init exited and its container is destroyed; nspawn: until it exits"}, 0.8),
	}
}

func ptr(s stat) *stat { return &s }

func describeStates(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s×%d", k, v))
	}
	if len(parts) == 0 {
		return ""
	}
	slices.Sort(parts)
	return "is-system-running: " + strings.Join(parts, ", ")
}

// readyAt waits until a partition is ready and returns when it became so,
// by metainit's own clock (start + ready_in), not by when this poll saw it.
func readyAt(in *instance, name string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := in.status(name)
		if err != nil {
			return time.Time{}, err
		}
		switch s.State {
		case partition.StateReady:
			return s.Started.Add(time.Duration(s.ReadyIn * float64(time.Second))), nil
		case partition.StateFailed, partition.StateStopped:
			return time.Time{}, fmt.Errorf("partition %s %s before ready: %s %s", name, s.State, s.LastExit, s.Error)
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("partition %s not ready after %s (%s)", name, timeout, s.State)
		}
		time.Sleep(probeEvery)
	}
}

// stopAll stops partitions at once and waits for all.
func stopAll(in *instance, names ...string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = in.call("stop", n)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// startAll starts partitions at once (one control request each, sent
// together, as PID 1 starts a boot's partitions) and waits for the answers.
func startAll(in *instance, names ...string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = control.Call(in.sock, &control.Request{Verb: "start", Name: n})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- 5. Memory -----------------------------------------------------------

func (e *env) rowsMemory(c cfg, rootfs map[string]string) []row {
	fig5a := "memory: metainit PID 1 RSS, systemd + runit up and idle"
	fig5b := "memory: metainit PID 1 PSS, same"
	fig5c := fmt.Sprintf("memory: RSS per extra partition (+%d trivial)", c.memExtra)
	fail := func(err error) []row {
		return []row{failedRow("5a", fig5a, err), failedRow("5b", fig5b, err), failedRow("5c", fig5c, err)}
	}
	sysSpec, runitSpec, err := e.systemdRunitSpecs(rootfs)
	if err != nil {
		return fail(err)
	}
	bbRoot, err := e.overlay("busybox", rootfs["busybox"])
	if err != nil {
		return fail(err)
	}
	trivial, err := trivialSpec(bbRoot)
	if err != nil {
		return fail(err)
	}
	measure := func(name string, extra int) (rss, pss float64, err error) {
		parts := []partDef{{"sys", sysSpec}, {"runit", runitSpec}}
		for i := 1; i <= extra; i++ {
			parts = append(parts, partDef{fmt.Sprintf("x%03d", i), trivial})
		}
		in, err := e.bootInstance(name, parts)
		if err != nil {
			return 0, 0, err
		}
		defer in.shutdown()
		if err := in.waitState(nil, 2*time.Minute, partition.StateReady); err != nil {
			return 0, 0, err
		}
		time.Sleep(c.idle)
		return in.mem()
	}
	rss2, pss2, err := measure("mem-2", 0)
	if err != nil {
		return fail(err)
	}
	rssN, _, err := measure("mem-extra", c.memExtra)
	if err != nil {
		return fail(err)
	}
	perExtra := (rssN - rss2) / float64(c.memExtra)

	// Peer: systemd-nspawn, one process per container. The same two inits
	// booted, idle as long; then trivial containers (busybox sleep, no --boot).
	nsSys, err := e.overlay("systemd-nspawn", rootfs["systemd"])
	if err != nil {
		return fail(err)
	}
	nsRunit, err := e.overlay("runit-nspawn", rootfs["runit"])
	if err != nil {
		return fail(err)
	}
	a, err := e.prepareNspawn("bench-mem-sys", nsSys, "metainit-bench/nspawn-mem-sys")
	if err != nil {
		return fail(err)
	}
	b, err := e.prepareNspawn("bench-mem-runit", nsRunit, "metainit-bench/nspawn-mem-runit")
	if err != nil {
		return fail(err)
	}
	a.goNow()
	b.goNow()
	if _, err := a.waitReady(time.Minute); err != nil {
		return fail(err)
	}
	time.Sleep(2*time.Second + c.idle) // runit sends no READY=1: give it the time it takes
	var nsRSS, nsPSS float64
	for _, n := range []*nspawn{a, b} {
		r, p, err := memOf(n.pid())
		if err != nil {
			return fail(err)
		}
		nsRSS, nsPSS = nsRSS+r, nsPSS+p
	}
	a.stop()
	b.stop()
	const nTrivial = 5
	var trivRSS, trivPSS float64
	var ns []*nspawn
	for i := 0; i < nTrivial; i++ {
		n, err := e.prepareTrivialNspawn(fmt.Sprintf("bench-triv-%d", i), bbRoot, fmt.Sprintf("metainit-bench/nspawn-triv-%d", i))
		if err != nil {
			return fail(err)
		}
		n.goNow()
		ns = append(ns, n)
	}
	time.Sleep(c.idle)
	for _, n := range ns {
		r, p, err := memOf(n.pid())
		if err != nil {
			return fail(fmt.Errorf("trivial nspawn: %w (see %s)", err, filepath.Join(e.work, "nspawn-"+n.name+".log")))
		}
		trivRSS, trivPSS = trivRSS+r/nTrivial, trivPSS+p/nTrivial
	}
	for _, n := range ns {
		n.stop()
	}
	mb := func(kb float64) float64 { return kb / 1024 }
	idle := fmt.Sprintf("read %s after all were ready", c.idle)
	return []row{
		{ID: "5a", Figure: fig5a, Unit: "MB", Metainit: one(mb(rss2)), Peer: "systemd-nspawn ×2", PeerStat: ptr(one(mb(nsRSS))), Ratio: rss2 / nsRSS,
			Goal: "≤ 8 MB", Met: verdict(mb(rss2) <= 8), Note: "PID 1 of the instance only (the nested runner is not there on a machine); " + idle},
		{ID: "5b", Figure: fig5b, Unit: "MB", Metainit: one(mb(pss2)), Peer: "systemd-nspawn ×2", PeerStat: ptr(one(mb(nsPSS))), Ratio: pss2 / nsPSS, Goal: "(info)", Met: "-"},
		{ID: "5c", Figure: fig5c, Unit: "MB", Metainit: one(mb(perExtra)), Peer: "systemd-nspawn, per container", PeerStat: ptr(one(mb(trivRSS))), Ratio: perExtra / trivRSS,
			Goal: "≤ 0.2 MB", Met: verdict(mb(perExtra) <= 0.2),
			Note: fmt.Sprintf("(RSS with %d extra − RSS with 2) / %d; nspawn: mean RSS of %d nspawn processes running busybox sleep (PSS %.2f MB)", c.memExtra, c.memExtra, nTrivial, mb(trivPSS))},
	}
}

// prepareTrivialNspawn is nspawn running busybox sleep (no --boot).
// --read-only lets several share one rootfs (nspawn locks a writable one).
func (e *env) prepareTrivialNspawn(name, rootfs, cg string) (*nspawn, error) {
	return e.prepareNspawnArgs(name, cg, []string{"systemd-nspawn", "-D", rootfs, "-M", name, "--read-only",
		"--register=no", "--keep-unit", "--console=read-only", "/bin/busybox", "sleep", "86400"})
}

// ---- 6. Scale --------------------------------------------------------------

func (e *env) rowsScale(c cfg, rootfs map[string]string) []row {
	top := c.sizes[len(c.sizes)-1]
	fig6a := fmt.Sprintf("scale: %d trivial partitions started at once → all running", top)
	fig6b := fmt.Sprintf("scale: growth exponent of time to all running, %v", c.sizes)
	fail := func(err error) []row { return []row{failedRow("6a", fig6a, err), failedRow("6b", fig6b, err)} }
	merged, err := e.overlay("busybox", rootfs["busybox"])
	if err != nil {
		return fail(err)
	}
	spec, err := trivialSpec(merged)
	if err != nil {
		return fail(err)
	}
	names := make([]string, top)
	var parts []partDef
	for i := range names {
		names[i] = fmt.Sprintf("s%03d", i+1)
		parts = append(parts, partDef{names[i], spec})
	}
	in, err := e.bootInstance("scale", parts)
	if err != nil {
		return fail(err)
	}
	defer in.shutdown()
	if err := in.waitState(nil, 2*time.Minute, partition.StateReady); err != nil {
		return fail(err)
	}
	if err := stopAll(in, names...); err != nil {
		return fail(err)
	}
	crun := &ociRuntime{name: "crun", bin: "crun", root: filepath.Join(e.work, "crun-scale-state")}
	for _, n := range names {
		if err := peerBundle(filepath.Join(e.work, "bundles", "scale", n), spec, "/metainit-bench/crun-scale/"+n); err != nil {
			return fail(err)
		}
	}
	e.onCleanup(func() {
		for _, n := range names {
			_ = crun.delete(n)
		}
		e.removeCgroups("metainit-bench/crun-scale")
	})
	w, err := newExecWatcher("busybox")
	if err != nil {
		return fail(err)
	}
	defer w.Close()
	metainit := func(k int) (time.Duration, error) {
		w.drain()
		t0 := monoNow()
		if err := startAll(in, names[:k]...); err != nil {
			return 0, err
		}
		last, err := w.waitN(":/"+in.cgroup+"/s", k, time.Minute)
		if err != nil {
			return 0, err
		}
		return last - t0, stopAll(in, names[:k]...)
	}
	peer := func(k int) (time.Duration, error) {
		cmds := make([]*exec.Cmd, k)
		for i := range cmds {
			cmd, err := crun.runCmd(filepath.Join(e.work, "bundles", "scale", names[i]), names[i], filepath.Join(e.work, "crun-scale-"+names[i]+".err"))
			if err != nil {
				return 0, err
			}
			cmds[i] = cmd
		}
		w.drain()
		t0 := monoNow()
		var wg sync.WaitGroup
		errs := make([]error, k)
		for i, cmd := range cmds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = cmd.Run()
			}()
		}
		wg.Wait()
		last, err := w.waitN(":/metainit-bench/crun-scale/s", k, time.Minute)
		var wg2 sync.WaitGroup
		for _, n := range names[:k] {
			wg2.Add(1)
			go func() { defer wg2.Done(); _ = crun.delete(n) }()
		}
		wg2.Wait()
		for _, rerr := range errs {
			if rerr != nil {
				return 0, fmt.Errorf("crun run: %w", rerr)
			}
		}
		return last - t0, err
	}
	mi := map[int][]float64{}
	cr := map[int][]float64{}
	// One warm-up at the smallest size each.
	if _, err := metainit(c.sizes[0]); err != nil {
		return fail(err)
	}
	if _, err := peer(c.sizes[0]); err != nil {
		return fail(err)
	}
	for rep := 0; rep < c.nScale; rep++ {
		for _, k := range c.sizes {
			first, second := metainit, peer
			if rep%2 == 1 {
				first, second = peer, metainit
			}
			d1, err := first(k)
			if err != nil {
				return fail(err)
			}
			d2, err := second(k)
			if err != nil {
				return fail(err)
			}
			if rep%2 == 1 {
				d1, d2 = d2, d1
			}
			mi[k], cr[k] = append(mi[k], ms(d1)), append(cr[k], ms(d2))
		}
	}
	xs := make([]float64, len(c.sizes))
	my, cy := make([]float64, len(c.sizes)), make([]float64, len(c.sizes))
	var detail []string
	for i, k := range c.sizes {
		xs[i] = float64(k)
		my[i], cy[i] = summarize(mi[k]).Median, summarize(cr[k]).Median
		detail = append(detail, fmt.Sprintf("%d: %.0f vs %.0f ms", k, my[i], cy[i]))
	}
	mExp, cExp := powerFit(xs, my), powerFit(xs, cy)
	return []row{
		infoRow(row{ID: "6a", Figure: fig6a, Unit: "ms", Metainit: summarize(mi[top]), Peer: fmt.Sprintf("%d × crun run -d at once", top), PeerStat: ptr(summarize(cr[top])),
			Goal: "(info)", Note: "metainit: one start request per partition, all at once, on the control socket (as PID 1 starts a boot's partitions); medians by size: " + strings.Join(detail, ", ")}),
		{ID: "6b", Figure: fig6b, Unit: "exp", Metainit: one(mExp), Peer: "crun", PeerStat: ptr(one(cExp)), Ratio: mExp / cExp,
			Goal: "≤ 1 (linear or better)", Met: verdict(mExp <= 1.0), Note: "b of t = a·n^b, least squares on the medians"},
	}
}

// ---- 7. Reaping -------------------------------------------------------------

func (e *env) rowReap(c cfg, rootfs map[string]string) []row {
	fig := fmt.Sprintf("reaping: %d orphaned zombies re-parented to PID 1 → all reaped", c.orphans)
	fail := func(err error) []row { return []row{failedRow("7", fig, err)} }
	merged, err := e.overlay("busybox", rootfs["busybox"])
	if err != nil {
		return fail(err)
	}
	spec, err := trivialSpec(merged)
	if err != nil {
		return fail(err)
	}
	in, err := e.bootInstance("reap", []partDef{{"t1", spec}})
	if err != nil {
		return fail(err)
	}
	defer in.shutdown()
	if err := in.waitState(nil, time.Minute, partition.StateReady); err != nil {
		return fail(err)
	}
	t, err := e.startTini()
	if err != nil {
		return fail(err)
	}
	// Warm-up, smaller.
	if _, err := e.reapOnce(in.pid1, c.orphans/10, "metainit-bench/reap"); err != nil {
		return fail(fmt.Errorf("metainit: %w", err))
	}
	if _, err := e.reapOnce(t.pid1, c.orphans/10, "metainit-bench/reap"); err != nil {
		return fail(fmt.Errorf("tini: %w", err))
	}
	var mi, ti []float64
	for i := 0; i < c.nReap; i++ {
		for k := 0; k < 2; k++ {
			target, who := in.pid1, "metainit"
			if (i+k)%2 == 1 {
				target, who = t.pid1, "tini"
			}
			d, err := e.reapOnce(target, c.orphans, "metainit-bench/reap")
			if err != nil {
				return fail(fmt.Errorf("%s: %w", who, err))
			}
			if who == "metainit" {
				mi = append(mi, ms(d))
			} else {
				ti = append(ti, ms(d))
			}
		}
	}
	return []row{ratioRow(row{ID: "7", Figure: fig, Unit: "ms", Metainit: summarize(mi), Peer: "tini (PID 1 of unshare --pid)", PeerStat: ptr(summarize(ti)),
		Goal: "≤ 1.0× tini", Note: "orphans made by a process nsenter'ed into the PID namespace; clock from their parent's exit to pids.current = 0 (zombies stay charged until reaped)"}, 1.0)}
}

// systemdRunitSpecs lays fresh overlays of the systemd and runit trees and
// returns the specs metainit boots them with (rows 2-5 share the pair).
func (e *env) systemdRunitSpecs(rootfs map[string]string) (sys, runit *rspec.Spec, err error) {
	sysRoot, err := e.overlay("systemd-metainit", rootfs["systemd"])
	if err != nil {
		return nil, nil, err
	}
	runitRoot, err := e.overlay("runit-metainit", rootfs["runit"])
	if err != nil {
		return nil, nil, err
	}
	if sys, err = initSpec("systemd", sysRoot); err != nil {
		return nil, nil, err
	}
	runit, err = initSpec("runit", runitRoot)
	return sys, runit, err
}
