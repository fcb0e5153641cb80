package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/partition"
	"github.com/metainit/metainit/specs"
)

// Exit codes: 0 success, 1 failure, 2 usage.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type verb struct {
	name, args, help string
	run              func(args []string) int
}

var verbs []verb

func init() {
	verbs = []verb{
		{"boot", "--nested [--partitions DIR] [--run-dir DIR] [--log-dir DIR] [--root DIR] [--cmdline OPTS]", "boot the partitions as PID 1 of new namespaces", cmdBoot},
		{"list", "[--json]", "list partitions with state, init, pid, restarts and last exit", cmdList},
		{"status", "NAME [--json]", "show one partition", cmdStatus},
		{"start", "NAME", "start a partition", simple("start")},
		{"stop", "NAME", "stop a partition through its init's own protocol", simple("stop")},
		{"restart", "NAME", "stop, then start a partition (reads config.json again)", simple("restart")},
		{"reset-failed", "[NAME]", "clear the failed state (a crash loop, say) of one or all partitions", resetFailed},
		{"reload", "", "rescan the partitions directory: start new bundles, stop removed ones, report changed ones", machineVerb("reload")},
		{"exec", "NAME -- CMD [ARG...]", "run a command inside a partition; its exit code is passed through", cmdExec},
		{"poweroff", "", "stop every partition, then power off", machineVerb("poweroff")},
		{"reboot", "", "stop every partition, then reboot", machineVerb("reboot")},
		{"halt", "", "stop every partition, then halt", machineVerb("halt")},
		{"spec", "--init KIND [--rootfs PATH] [--hostname NAME]", "print a config.json that boots KIND (" + strings.Join(partition.Kinds(), ", ") + ", auto)", cmdSpec},
		{"version", "", "print the version", func([]string) int { fmt.Println("metainit", version); return 0 }},
		{"help", "[VERB]", "show help", cmdHelp},
	}
}

var version = "dev"

func run(args []string) int {
	if len(args) == 0 {
		cmdHelp(nil)
		return exitUsage
	}
	for _, v := range verbs {
		if v.name == args[0] {
			return v.run(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "metainit: unknown verb %q (see metainit help)\n", args[0])
	return exitUsage
}

func cmdHelp(args []string) int {
	if len(args) > 0 {
		for _, v := range verbs {
			if v.name == args[0] {
				fmt.Printf("usage: metainit %s %s\n\n%s\n", v.name, v.args, v.help)
				return exitOK
			}
		}
		fmt.Fprintf(os.Stderr, "metainit help: unknown verb %q\n", args[0])
		return exitUsage
	}
	fmt.Println("usage: metainit VERB [ARGS]   (--socket PATH or $METAINIT_SOCKET picks the instance)")
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, v := range verbs {
		fmt.Fprintf(w, "  %s %s\t%s\n", v.name, v.args, v.help)
	}
	w.Flush()
	return exitOK
}

func usage(verb string, err error) int {
	fmt.Fprintf(os.Stderr, "metainit %s: %v (see metainit help %s)\n", verb, err, verb)
	return exitUsage
}

// clientFlags are the flags every client verb takes.
type clientFlags struct {
	fs     *flag.FlagSet
	socket string
	json   bool
}

func newClientFlags(verb string) *clientFlags {
	c := &clientFlags{fs: flag.NewFlagSet(verb, flag.ContinueOnError)}
	c.fs.SetOutput(io.Discard)
	def := os.Getenv("METAINIT_SOCKET")
	if def == "" {
		def = defaultRunDir + "/control.sock"
	}
	c.fs.StringVar(&c.socket, "socket", def, "the control socket of the instance")
	c.fs.BoolVar(&c.json, "json", false, "print JSON")
	return c
}

// parse accepts flags before and after positional arguments.
func (c *clientFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, err
		}
		args = c.fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func call(c *clientFlags, req *control.Request, files ...*os.File) (*control.Response, int) {
	resp, err := control.Call(c.socket, req, files...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "metainit %s: %v\n", req.Verb, err)
		return nil, exitFailure
	}
	if !resp.OK {
		fmt.Fprintf(os.Stderr, "metainit %s: %s\n", req.Verb, resp.Error)
		return resp, exitFailure
	}
	return resp, exitOK
}

func cmdList(args []string) int {
	c := newClientFlags("list")
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
	if c.json {
		return printJSON(resp.Partitions)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tINIT\tPID\tUPTIME\tRESTARTS\tLAST EXIT\tERROR")
	for _, s := range resp.Partitions {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.State, dash(string(s.Kind)),
			dashInt(s.Pid), uptime(s.Started), s.Restarts, dash(s.LastExit), dash(s.Error))
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
	if c.json {
		return printJSON(resp.Partitions[0])
	}
	s := resp.Partitions[0]
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(w, "%s:\t%s\n", k, v) }
	row("Partition", s.Name)
	row("State", string(s.State))
	row("Init", fmt.Sprintf("%s (%s)", dash(string(s.Kind)), dash(s.Init)))
	row("Bundle", dash(s.Bundle))
	row("PID", dashInt(s.Pid))
	row("Uptime", uptime(s.Started))
	if s.ReadyIn > 0 {
		row("Ready in", fmt.Sprintf("%.2fs", s.ReadyIn))
	}
	row("Restarts", fmt.Sprint(s.Restarts))
	row("Last exit", dash(s.LastExit))
	if s.Notify != "" {
		row("Status", s.Notify)
	}
	if s.Error != "" {
		row("Error", s.Error)
	}
	w.Flush()
	return exitOK
}

func simple(verb string) func([]string) int {
	return func(args []string) int {
		c := newClientFlags(verb)
		pos, err := c.parse(args)
		if err == nil && len(pos) != 1 {
			err = fmt.Errorf("%s takes one partition name", verb)
		}
		if err != nil {
			return usage(verb, err)
		}
		resp, code := call(c, &control.Request{Verb: verb, Name: pos[0]})
		if code == exitOK && resp.Message != "" {
			fmt.Println(resp.Message)
		}
		return code
	}
}

func resetFailed(args []string) int {
	c := newClientFlags("reset-failed")
	pos, err := c.parse(args)
	if err == nil && len(pos) > 1 {
		err = errors.New("reset-failed takes at most one partition name")
	}
	if err != nil {
		return usage("reset-failed", err)
	}
	req := &control.Request{Verb: "reset-failed"}
	if len(pos) == 1 {
		req.Name = pos[0]
	}
	resp, code := call(c, req)
	if code == exitOK {
		fmt.Println(resp.Message)
	}
	return code
}

func machineVerb(verb string) func([]string) int {
	return func(args []string) int {
		c := newClientFlags(verb)
		pos, err := c.parse(args)
		if err == nil && len(pos) != 0 {
			err = fmt.Errorf("%s takes no arguments", verb)
		}
		if err != nil {
			return usage(verb, err)
		}
		resp, code := call(c, &control.Request{Verb: verb})
		if code == exitOK {
			fmt.Println(resp.Message)
		}
		return code
	}
}

func cmdExec(args []string) int {
	c := newClientFlags("exec")
	// Everything after NAME belongs to the command, flags included.
	var name string
	var cmd []string
	for i := 0; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") || args[i] == "--" {
			if args[i] == "--" {
				return usage("exec", errors.New("the partition name comes before --"))
			}
			if err := c.fs.Parse(args[:i]); err != nil {
				return usage("exec", err)
			}
			name, cmd = args[i], args[i+1:]
			break
		}
	}
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	if name == "" || len(cmd) == 0 {
		return usage("exec", errors.New("want NAME -- CMD [ARG...]"))
	}
	resp, code := call(c, &control.Request{Verb: "exec", Name: name, Args: cmd}, os.Stdin, os.Stdout, os.Stderr)
	if code != exitOK {
		return code
	}
	return resp.ExitCode
}

func cmdSpec(args []string) int {
	fs := flag.NewFlagSet("spec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kind := fs.String("init", "auto", "the init system")
	rootfs := fs.String("rootfs", "rootfs", "root.path of the spec")
	host := fs.String("hostname", "", "the partition's hostname")
	if err := fs.Parse(args); err != nil {
		return usage("spec", err)
	}
	wd, _ := os.Getwd()
	s, err := specs.Generate(specs.Options{Kind: *kind, Rootfs: *rootfs, Hostname: *host, BundleDir: wd})
	if err != nil {
		fmt.Fprintf(os.Stderr, "metainit spec: %v\n", err)
		return exitFailure
	}
	return printJSON(s)
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
	return fmt.Sprint(n)
}

func uptime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(100 * time.Millisecond).String()
}
