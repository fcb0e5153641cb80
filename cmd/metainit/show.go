package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/partition"
	"golang.org/x/sys/unix"
)

func cmdList(args []string) int {
	c := newClientFlags("list")
	names := c.fs.Bool("names", false, "print the names only (for completion)")
	pos, err := c.parse(args)
	if err == nil && len(pos) > 0 {
		err = errors.New("list takes no arguments")
	}
	if err != nil {
		return usage("list", err)
	}
	resp, code := call(c, &control.Request{Verb: "list"})
	if code != exitOK {
		return code
	}
	switch {
	case c.json:
		return printJSON(resp.Partitions)
	case *names:
		for _, s := range resp.Partitions {
			fmt.Println(s.Name)
		}
		return exitOK
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tINIT\tPID\tUPTIME\tPROCS\tMEMORY\tRESTARTS\tLAST EXIT\tERROR")
	for _, s := range resp.Partitions {
		procs, mem := "-", "-"
		if u := s.Usage; u != nil {
			procs, mem = strconv.FormatUint(u.Processes, 10), bytesHuman(u.MemoryBytes)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.State, dash(string(s.Kind)),
			dashInt(s.Pid), uptime(s.Started), procs, mem, s.Restarts, dash(s.LastExit), dash(s.Error))
	}
	w.Flush()
	return exitOK
}

func cmdStatus(args []string) int {
	c := newClientFlags("status")
	pos, err := c.parse(args)
	if err == nil && len(pos) != 1 {
		err = errors.New("status takes one partition name")
	}
	if err != nil {
		return usage("status", err)
	}
	resp, code := call(c, &control.Request{Verb: "status", Name: pos[0]})
	if code != exitOK {
		return code
	}
	s := resp.Partitions[0]
	if c.json {
		return printJSON(struct {
			partition.Status
			Log []partition.Line `json:"log"`
		}{s, resp.Lines})
	}
	fmt.Printf("%s %s - %s partition\n", stateDot(s.State), s.Name, dash(string(s.Kind)))
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 1, ' ', tabwriter.AlignRight)
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t %s\n", k, v) }
	state := string(s.State)
	if !s.Started.IsZero() {
		state += fmt.Sprintf(" since %s; %s ago", s.Started.Format("2006-01-02 15:04:05"), uptime(s.Started))
	}
	row("State", state)
	if s.ReadyIn > 0 {
		row("Ready in", fmt.Sprintf("%.2fs", s.ReadyIn))
	}
	row("Bundle", dash(s.Bundle))
	row("Init", dash(s.Init))
	row("Main PID", dashInt(s.Pid))
	if u := s.Usage; u != nil {
		procs := strconv.FormatUint(u.Processes, 10)
		if u.PidsLimit > 0 {
			procs += " (limit " + strconv.FormatUint(u.PidsLimit, 10) + ")"
		}
		mem := bytesHuman(u.MemoryBytes)
		if u.MemoryLimit > 0 {
			mem += " (max " + bytesHuman(u.MemoryLimit) + ")"
		}
		row("Tasks", procs)
		row("Memory", mem)
		row("CPU", time.Duration(u.CPUNanos).Round(time.Millisecond).String())
		if u.OOMKills > 0 {
			row("OOM kills", strconv.FormatUint(u.OOMKills, 10))
		}
	}
	row("Restarts", strconv.Itoa(s.Restarts))
	row("Last exit", dash(s.LastExit))
	if s.Notify != "" {
		row("Status", s.Notify)
	}
	if s.Error != "" {
		row("Error", s.Error)
	}
	w.Flush()
	if len(resp.Lines) > 0 {
		fmt.Println()
		for _, l := range resp.Lines {
			fmt.Printf("%s %s\n", l.Time.Format("Jan 02 15:04:05"), l.Text)
		}
	}
	return exitOK
}

func stateDot(s partition.State) string {
	switch s {
	case partition.StateReady, partition.StateRunning:
		return "●"
	case partition.StateFailed:
		return "×"
	}
	return "○"
}

func cmdTop(args []string) int {
	c := newClientFlags("top")
	once := c.fs.Bool("once", false, "print the table once and exit")
	interval := c.fs.Duration("interval", time.Second, "refresh interval")
	pos, err := c.parse(args)
	if err == nil && len(pos) > 0 {
		err = errors.New("top takes no arguments")
	}
	if err == nil && *interval < 100*time.Millisecond {
		err = errors.New("--interval must be at least 100ms")
	}
	if err != nil {
		return usage("top", err)
	}
	if c.json || !isTerminal(os.Stdout) {
		*once = true
	}
	prevCPU := map[string]uint64{}
	var prevAt time.Time
	sample := func() ([]partition.Status, map[string]float64, int) {
		resp, code := call(c, &control.Request{Verb: "list"})
		if code != exitOK {
			return nil, nil, code
		}
		now := time.Now()
		cpu := map[string]float64{}
		for _, s := range resp.Partitions {
			if s.Usage == nil {
				continue
			}
			if p, ok := prevCPU[s.Name]; ok && !prevAt.IsZero() && s.Usage.CPUNanos >= p {
				cpu[s.Name] = 100 * float64(s.Usage.CPUNanos-p) / float64(now.Sub(prevAt).Nanoseconds())
			}
			prevCPU[s.Name] = s.Usage.CPUNanos
		}
		prevAt = now
		return resp.Partitions, cpu, exitOK
	}
	if *once {
		st, _, code := sample()
		if code != exitOK {
			return code
		}
		time.Sleep(200 * time.Millisecond) // a second sample gives CPU%
		st, cpu, code := sample()
		if code != exitOK {
			return code
		}
		if c.json {
			return printJSON(st)
		}
		printTop(st, cpu)
		return exitOK
	}
	restore, _ := rawTerminal(int(os.Stdin.Fd()))
	defer restore()
	quit := make(chan struct{})
	go func() {
		b := make([]byte, 1)
		for {
			if n, err := os.Stdin.Read(b); err != nil || (n == 1 && (b[0] == 'q' || b[0] == 3)) {
				close(quit)
				return
			}
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	defer signal.Stop(sigs)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		st, cpu, code := sample()
		if code != exitOK {
			return code
		}
		fmt.Print("\x1b[H\x1b[2J")
		fmt.Printf("metainit top - %s - %d partitions (q quits)\r\n\r\n", time.Now().Format("15:04:05"), len(st))
		var b strings.Builder
		printTopTo(&b, st, cpu)
		fmt.Print(strings.ReplaceAll(b.String(), "\n", "\r\n"))
		select {
		case <-quit:
			return exitOK
		case <-sigs:
			return exitOK
		case <-tick.C:
		}
	}
}

func printTop(st []partition.Status, cpu map[string]float64) {
	var b strings.Builder
	printTopTo(&b, st, cpu)
	fmt.Print(b.String())
}

func printTopTo(b *strings.Builder, st []partition.Status, cpu map[string]float64) {
	w := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tINIT\tUPTIME\tPROCS\tMEMORY\tCPU%\tRESTARTS")
	for _, s := range st {
		procs, mem, c := "-", "-", "-"
		if u := s.Usage; u != nil {
			procs, mem = strconv.FormatUint(u.Processes, 10), bytesHuman(u.MemoryBytes)
			if v, ok := cpu[s.Name]; ok {
				c = fmt.Sprintf("%.1f", v)
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", s.Name, s.State, dash(string(s.Kind)), uptime(s.Started), procs, mem, c, s.Restarts)
	}
	w.Flush()
}

func cmdLogs(args []string) int {
	c := newClientFlags("logs")
	n := c.fs.Int("n", 0, "print only the last `LINES` lines")
	follow := c.fs.Bool("f", false, "follow: print new output as it comes, until interrupted")
	since := c.fs.String("since", "", "only lines from `TIME` on: RFC 3339, YYYY-MM-DD HH:MM:SS, HH:MM[:SS] today, or a duration ago (10m)")
	pos, err := c.parse(args)
	if err == nil && len(pos) != 1 {
		err = errors.New("logs takes one partition name")
	}
	if err == nil && *n < 0 {
		err = errors.New("-n must not be negative")
	}
	var t time.Time
	if err == nil && *since != "" {
		t, err = parseSince(*since, time.Now())
	}
	if err != nil {
		return usage("logs", err)
	}
	req := &control.Request{Verb: "logs", Name: pos[0], Lines: *n, Since: t, Follow: *follow}
	if !*follow {
		resp, code := call(c, req)
		if code != exitOK {
			return code
		}
		if c.json {
			return printJSON(resp.Lines)
		}
		for _, l := range resp.Lines {
			fmt.Println(l.Text)
		}
		return exitOK
	}
	stream, resp, err := control.Open(c.socket, req)
	if err != nil || stream == nil {
		return report("logs", resp, err)
	}
	defer stream.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGPIPE)
	go func() { <-sigs; stream.Close() }()
	for {
		kind, data, final, err := stream.Next()
		if err != nil {
			return exitOK // interrupted
		}
		if kind == control.PacketEnd {
			return report("logs", final, nil)
		}
		if _, err := os.Stdout.Write(data); err != nil {
			return exitOK
		}
	}
}

// parseSince reads --since: RFC 3339, a date and time, a time today, or a
// duration ago.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"15:04:05", "15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			y, m, d := now.Date()
			return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), 0, time.Local), nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: not a time or duration", s)
}

func cmdInfo(args []string) int {
	c := newClientFlags("info")
	pos, err := c.parse(args)
	if err == nil && len(pos) > 0 {
		err = errors.New("info takes no arguments")
	}
	if err != nil {
		return usage("info", err)
	}
	resp, code := call(c, &control.Request{Verb: "info"})
	if code != exitOK {
		return code
	}
	if c.json {
		return printJSON(resp.Info)
	}
	i := resp.Info
	fmt.Printf("pid %d (nested %v), version %s, up %s\ngoroutines %d, open fds %d, RSS %d KiB, orphans reaped %d\n",
		i.Pid, i.Nested, i.Version, i.Uptime, i.Goroutines, i.FDs, i.RSSKiB, i.Reaped)
	return exitOK
}

func printJSON(v any) int {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "metainit:", err)
		return exitFailure
	}
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashInt(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func uptime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(100 * time.Millisecond).String()
}

func bytesHuman(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
