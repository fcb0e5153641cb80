// Command bench measures metainit against the tools a user would otherwise
// pick (crun, runc, systemd-nspawn, tini), each figure against its peer in
// the same run, and prints one table of ratios. `make bench` runs it; see
// bench/README.md for what each row measures and how it is kept fair.
//
// It must run as root on the machine it measures. It works in a private
// mount namespace (its overlays and its view of /sys/fs/cgroup never show on
// the host) and undoes everything it started, mounted or created.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case helperCgexec:
			os.Exit(cgexecMain(os.Args[2:]))
		case helperOrphans:
			os.Exit(orphansMain(os.Args[2:]))
		case helperCgrelease:
			os.Exit(cgreleaseMain(os.Args[2:]))
		}
	}
	o := parseFlags()
	if o.render != "" {
		os.Exit(render(o.render))
	}
	if code, ok := runPrivate(); ok {
		os.Exit(code)
	}
	os.Exit(inner(o))
}

type options struct {
	metainit, repo, out string
	rows                map[string]bool
	quick, keep         bool
	render              string
	cold                bool
	c                   cfg
}

func parseFlags() options {
	var o options
	var rows string
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.StringVar(&o.metainit, "metainit", "bin/metainit", "the metainit binary to measure")
	fs.StringVar(&o.repo, "repo", ".", "the metainit source tree (for tests/rootfs/build.sh)")
	fs.StringVar(&o.out, "out", "bench/out", "where the Markdown and JSON tables go")
	fs.StringVar(&rows, "rows", "1,2,5,6,7,8", "which figures to measure (2 also gives 3 and 4)")
	fs.BoolVar(&o.quick, "quick", false, "a smoke run: every row, few repetitions, small sizes")
	fs.BoolVar(&o.cold, "cold", false, "do not keep the kernel's cgroup migration path warm during the timing rows (see cgroupWarmth): starts then pay an RCU grace period or not, depending on the rest of the machine")
	fs.StringVar(&o.render, "render", "", "print the table of an earlier run's bench.json and write its bench.md next to it (no measuring)")
	fs.BoolVar(&o.keep, "keep", false, "keep the scratch directory (logs of every instance and container)")
	fs.IntVar(&o.c.nStart, "n-start", 30, "runs of the partition start figure")
	fs.IntVar(&o.c.nBoot, "n-boot", 7, "runs of the systemd figures")
	fs.IntVar(&o.c.nReap, "n-reap", 5, "runs of the reaping figure")
	fs.IntVar(&o.c.orphans, "orphans", 10000, "orphans per reaping run")
	fs.IntVar(&o.c.nScale, "n-scale", 3, "runs per size of the scale figure")
	fs.IntVar(&o.c.memExtra, "mem-extra", 50, "trivial partitions added for the memory figure")
	fs.IntVar(&o.c.nVM, "n-vm", 3, "qemu boots of each kind for the real boot figure")
	fs.DurationVar(&o.c.idle, "idle", 5*time.Second, "how long things idle before memory is read")
	_ = fs.Parse(os.Args[1:])
	o.c.sizes = []int{10, 50, 100}
	if o.quick {
		o.c = cfg{nStart: 3, nBoot: 1, nReap: 1, orphans: 1000, nScale: 1, sizes: []int{2, 5, 10}, memExtra: 5, idle: time.Second, nVM: 1}
	}
	o.rows = map[string]bool{}
	for _, r := range strings.Split(rows, ",") {
		o.rows[strings.TrimSpace(r)] = true
	}
	return o
}

func inner(o options) int {
	begin := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}
	if os.Geteuid() != 0 {
		logf("must run as root")
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		logf("%v", err)
		return 1
	}
	bin, err := filepath.Abs(o.metainit)
	if err != nil {
		logf("%v", err)
		return 1
	}
	for _, tool := range []string{bin, "crun", "runc", "systemd-nspawn", "tini", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			logf("missing %s (make bench installs runc, crun, systemd-container and tini)", tool)
			return 2
		}
	}
	work, err := os.MkdirTemp("/var/tmp", "metainit-bench-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	e := &env{metainit: bin, self: self, work: work, logf: logf, procs: map[int]*exec.Cmd{}, overlays: map[string]string{}}
	finished := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP)
	go func() {
		select {
		case s := <-sigs:
			logf("%s: cleaning up", s)
			e.cleanup()
			removeWork(work, logf)
			os.Exit(130)
		case <-finished:
		}
	}()
	defer func() {
		close(finished)
		e.cleanup()
		e.removeCgroups("metainit-bench")
		if o.keep {
			logf("kept %s", work)
			unmountWork(work, logf)
		} else {
			removeWork(work, logf)
		}
		waitCgroupsReleased(e.bound)
	}()
	e.onCleanup(func() { e.removeCgroups("metainit-bench") })
	if err := e.hybridCgroups(); err != nil {
		logf("cgroups: %v", err)
		return 1
	}
	if err := e.privateRunSystemd(); err != nil {
		logf("%v", err)
		return 1
	}
	rootfs := map[string]string{}
	for _, k := range []string{"busybox", "systemd", "runit"} {
		out, err := exec.Command(filepath.Join(o.repo, "tests/rootfs/build.sh"), k).Output()
		if err != nil {
			logf("rootfs %s: %v", k, err)
			return 1
		}
		rootfs[k] = strings.TrimSpace(string(out))
	}

	if d, err := coldMigration(); err == nil {
		how := "kept warm during rows 1-4 and 6, so that no tool pays it"
		if o.cold {
			how = "not kept warm (-cold): each start pays it or not, depending on the rest of the machine"
		}
		e.note("a cold cgroup migration (what every start does for its init) took %.2f ms on this host at the start of the run (an RCU grace period when the kernel's cgroup rwsem was idle); %s", float64(d)/1e6, how)
	}
	var rows []row
	step := func(id, what string, f func() []row) {
		if !o.rows[id] {
			return
		}
		t := time.Now()
		logf("%s ...", what)
		if !o.cold && (id == "1" || id == "2" || id == "6") {
			w, err := warmCgroups()
			if err != nil {
				logf("cgroup warmth: %v", err)
			}
			defer w.Stop()
		}
		r := f()
		rows = append(rows, r...)
		for _, x := range r {
			logf("  %s %s: %s", x.ID, x.Figure, brief(x))
		}
		logf("%s took %.0fs", what, time.Since(t).Seconds())
	}
	step("1", "1. partition start", func() []row { return e.rowStart(o.c, rootfs) })
	step("2", "2-4. systemd boot, side by side, stop", func() []row { return e.rowsSystemd(o.c, rootfs) })
	step("5", "5. memory", func() []row { return e.rowsMemory(o.c, rootfs) })
	step("6", "6. scale", func() []row { return e.rowsScale(o.c, rootfs) })
	step("7", "7. reaping", func() []row { return e.rowReap(o.c, rootfs) })
	step("8", "8. real boot", func() []row { return e.rowVM(o.c, o.repo) })
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })

	rep := report{
		Date:     time.Now().UTC().Format(time.RFC3339),
		Machine:  machine(),
		Versions: versions(bin),
		Quick:    o.quick,
		Rows:     rows,
		Notes:    e.notes,
		Took:     time.Since(begin).Round(time.Second).String(),
	}
	fmt.Println()
	printText(os.Stdout, rep)
	if err := rep.write(o.out); err != nil {
		logf("write %s: %v", o.out, err)
		return 1
	}
	logf("wrote %s/bench.md and %s/bench.json", o.out, o.out)
	for _, r := range rows {
		if strings.HasPrefix(r.Note, "ERROR") {
			return 1
		}
	}
	return 0
}

// waitCgroupsReleased waits (up to 5s) until removed cgroups are gone from
// the kernel's count, so that a v1 hierarchy bound for the run ends with the
// run (see checkCgroup2Restored).
func waitCgroupsReleased(ctrls []string) {
	for i := 0; i < 50 && len(ctrls) > 0; i++ {
		b, _ := os.ReadFile("/proc/cgroups")
		busy := false
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			// A controller bound to a hierarchy only for the bench: its root only.
			if len(f) == 4 && slices.Contains(ctrls, f[0]) && f[1] != "0" && f[2] != "1" {
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unmountWork unmounts whatever is still mounted below the scratch directory.
func unmountWork(work string, logf func(string, ...any)) {
	for _, m := range mounts() {
		if strings.HasPrefix(m.target, work+"/") {
			_ = unix.Unmount(m.target, unix.MNT_DETACH)
		}
	}
}

// removeWork removes the scratch directory once nothing is mounted below it.
func removeWork(work string, logf func(string, ...any)) {
	unmountWork(work, logf)
	for _, m := range mounts() {
		if strings.HasPrefix(m.target, work+"/") {
			logf("still mounted, %s left in place: %s", work, m.target)
			return
		}
	}
	if err := os.RemoveAll(work); err != nil {
		logf("remove %s: %v", work, err)
	}
}

type report struct {
	Date     string            `json:"date"`
	Machine  string            `json:"machine"`
	Versions map[string]string `json:"versions"`
	Quick    bool              `json:"quick,omitempty"`
	Rows     []row             `json:"rows"`
	Notes    []string          `json:"notes,omitempty"`
	Took     string            `json:"took"`
}

func brief(r row) string {
	if strings.HasPrefix(r.Note, "ERROR") {
		return r.Note
	}
	s := fmtStat(r.Metainit, r.Unit)
	if r.PeerStat != nil {
		s += " vs " + fmtStat(*r.PeerStat, r.Unit)
	}
	if r.Ratio != 0 {
		s += fmt.Sprintf(" = %.2f×", r.Ratio)
	}
	return s + " (goal " + r.Goal + ": " + r.Met + ")"
}

func fmtNum(v float64, unit string) string {
	switch {
	case unit == "exp":
		return fmt.Sprintf("%.3f", v)
	case unit == "MB" && v < 1:
		return fmt.Sprintf("%.3f MB", v)
	case unit == "MB":
		return fmt.Sprintf("%.2f MB", v)
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	default:
		return fmt.Sprintf("%.2f %s", v, unit)
	}
}

func fmtStat(s stat, unit string) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 {
		return fmtNum(s.Median, unit)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.Median, unit), trimUnit(fmtNum(s.Min, unit)), trimUnit(fmtNum(s.Max, unit)))
}

func trimUnit(s string) string { f, _, _ := strings.Cut(s, " "); return f }

func cells(r row) []string {
	peer := "–"
	if r.PeerStat != nil {
		peer = fmtStat(*r.PeerStat, r.Unit)
	}
	ratio := "–"
	if r.Ratio != 0 {
		ratio = fmt.Sprintf("%.2f×", r.Ratio)
	}
	n := "–"
	if r.Metainit.N > 0 {
		n = fmt.Sprint(r.Metainit.N)
	}
	mi := fmtStat(r.Metainit, r.Unit)
	if strings.HasPrefix(r.Note, "ERROR") {
		mi = "ERROR (see below)"
	} else if strings.HasPrefix(r.Note, "PENDING") {
		mi = "pending (see below)"
	}
	return []string{r.ID, r.Figure, n, mi, r.Peer, peer, ratio, r.Goal, r.Met}
}

var header = []string{"#", "figure", "N", "metainit median (min–max)", "peer", "peer median (min–max)", "ratio", "goal", "met"}

func printText(w *os.File, rep report) {
	fmt.Fprintf(w, "metainit bench, %s, on %s (took %s)\n\n", rep.Date, rep.Machine, rep.Took)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rep.Rows {
		fmt.Fprintln(tw, strings.Join(cells(r), "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", r.ID, r.Note)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func (rep report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s on %s; `make bench` took %s.\n\n", rep.Date, rep.Machine, rep.Took)
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, r := range rep.Rows {
		c := cells(r)
		for i := range c {
			c[i] = strings.ReplaceAll(c[i], "|", "\\|")
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(c, " | "))
	}
	b.WriteString("\n")
	for _, r := range rep.Rows {
		if r.Note != "" {
			fmt.Fprintf(&b, "- %s: %s\n", r.ID, r.Note)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	var vs []string
	for k, v := range rep.Versions {
		vs = append(vs, k+" "+v)
	}
	sort.Strings(vs)
	fmt.Fprintf(&b, "- versions: %s\n", strings.Join(vs, "; "))
	return b.String()
}

func (rep report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), j, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "bench.md"), []byte(rep.markdown()), 0o644)
}

// render prints an earlier run's table and rewrites its bench.md.
func render(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", file+":", err)
		return 1
	}
	printText(os.Stdout, rep)
	if err := rep.write(filepath.Dir(file)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// machine describes where the run happened.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var si unix.Sysinfo_t
	_ = unix.Sysinfo(&si)
	var u unix.Utsname
	_ = unix.Uname(&u)
	virt := ""
	if out, err := exec.Command("systemd-detect-virt", "--vm").Output(); err == nil {
		virt = ", " + strings.TrimSpace(string(out)) + " guest"
	}
	return fmt.Sprintf("%d vCPU %s, %.0f GiB RAM%s, Linux %s", runtime.NumCPU(), model,
		float64(si.Totalram)*float64(si.Unit)/(1<<30), virt, unix.ByteSliceToString(u.Release[:]))
}

func versions(bin string) map[string]string {
	v := map[string]string{}
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "?"
		}
		l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return l
	}
	v["metainit"] = strings.TrimPrefix(first(bin, "version"), "metainit ")
	v["crun"] = strings.TrimPrefix(first("crun", "--version"), "crun version ")
	v["runc"] = strings.TrimPrefix(first("runc", "--version"), "runc version ")
	v["systemd-nspawn"] = strings.TrimPrefix(first("systemd-nspawn", "--version"), "systemd ")
	v["tini"] = strings.TrimPrefix(first("tini", "--version"), "tini version ")
	v["go"] = runtime.Version()
	return v
}
