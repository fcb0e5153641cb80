package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/metainit/metainit/internal/control"
	"github.com/metainit/metainit/internal/machine"
	"github.com/metainit/metainit/partition"
)

// Exit codes: 0 success, 1 failure, 2 usage.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// A verb is one metainit command. The table below is the single source of
// help, the man page and shell completion.
type verb struct {
	name, args, help string
	run              func(args []string) int
	data             bool // prints data: takes --json
	partition        bool // takes a partition name (completion)
}

var verbs []verb

func init() {
	verbs = []verb{
		{"boot", "--nested [--partitions DIR] [--run-dir DIR] [--log-dir DIR] [--root DIR] [--cmdline OPTS]",
			"boot the partitions as PID 1 of new PID, mount and UTS namespaces of this machine (the same code as a real boot)", cmdBoot, false, false},
		{"list", "[--json]", "list partitions: state, init, pid, uptime, processes, memory, restarts, last exit", cmdList, true, false},
		{"status", "NAME [--json]", "show one partition: figures from its cgroup, last exit, bundle, and its last 10 console lines", cmdStatus, true, true},
		{"top", "[--once] [--json]", "a live table of partitions with processes, memory and CPU from their cgroups (q or Ctrl-C quits)", cmdTop, true, false},
		{"start", "NAME", "start a partition (clears a failed state)", simple("start"), false, true},
		{"stop", "NAME", "stop a partition through its init's own protocol", simple("stop"), false, true},
		{"restart", "NAME", "stop, then start a partition (a changed config.json applies)", simple("restart"), false, true},
		{"reset-failed", "[NAME]", "clear the failed state (a crash loop, say) of one or all partitions", resetFailed, false, true},
		{"reload", "", "rescan the partitions directory: start new bundles, stop removed ones, report changed ones", machineVerb("reload"), false, false},
		{"console", "NAME", "attach this terminal to a partition's /dev/console (Ctrl-] three times within 1s detaches)", cmdConsole, false, true},
		{"exec", "[-t] NAME -- CMD [ARG...]", "run a command inside a partition; -t gives it a terminal; its exit code is passed through", cmdExec, false, true},
		{"logs", "NAME [-n LINES] [-f] [--since TIME] [--json]", "print what a partition's console printed; -f follows", cmdLogs, true, true},
		{"poweroff", "", "stop every partition by its own protocol, then power off", machineVerb("poweroff"), false, false},
		{"reboot", "", "stop every partition by its own protocol, then reboot", machineVerb("reboot"), false, false},
		{"halt", "", "stop every partition by its own protocol, then halt", machineVerb("halt"), false, false},
		{"info", "[--json]", "PID 1's own figures: pid, goroutines, open fds, RSS, orphans reaped", cmdInfo, true, false},
		{"check", "[--fix] [DIR|BUNDLE...]", "check bundles without starting them; --fix rewrites config.json with the fixes", cmdCheck, false, false},
		{"spec", "--init KIND [--rootfs PATH] [--hostname NAME]", "print a config.json that boots KIND unmodified (" + strings.Join(partition.Kinds(), ", ") + ", auto)", cmdSpec, false, false},
		{"completion", "bash", "print a bash completion script (partition names come from the live instance)", cmdCompletion, false, false},
		{"man", "", "print the metainit(8) manual page (roff)", cmdMan, false, false},
		{"version", "", "print the version", cmdVersion, false, false},
		{"help", "[VERB]", "show help", cmdHelp, false, false},
	}
}

var version = "dev"

func run(args []string) int {
	machine.Version = version
	if len(args) == 0 {
		cmdHelp(nil)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" {
		return cmdHelp(nil)
	}
	for _, v := range verbs {
		if v.name == args[0] {
			for _, a := range args[1:] {
				if a == "-h" || a == "--help" {
					return cmdHelp([]string{v.name})
				}
				if a == "--" {
					break
				}
			}
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
	fmt.Println("usage: metainit VERB [ARGS]")
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	for _, v := range verbs {
		fmt.Fprintf(w, "  %s\t%s\n", v.name, v.help)
	}
	w.Flush()
	fmt.Println()
	fmt.Println("--socket PATH or $METAINIT_SOCKET picks the instance (default " + defaultRunDir + "/control.sock).")
	fmt.Println("Exit codes: 0 success, 1 failure, 2 usage; exec passes the command's own code through.")
	return exitOK
}

func cmdVersion(args []string) int {
	fmt.Println("metainit", version)
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

// call sends a request and reports a failure on stderr.
func call(c *clientFlags, req *control.Request, files ...*os.File) (*control.Response, int) {
	resp, err := control.Call(c.socket, req, files...)
	if code := report(req.Verb, resp, err); code != exitOK {
		return resp, code
	}
	return resp, exitOK
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
	tty := c.fs.Bool("t", false, "allocate a terminal")
	// Flags come before NAME; everything after NAME belongs to the command.
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		i++
	}
	if err := c.fs.Parse(args[:i]); err != nil {
		return usage("exec", err)
	}
	if i >= len(args) || args[i] == "--" {
		return usage("exec", errors.New("want [-t] NAME -- CMD [ARG...]"))
	}
	name, cmd := args[i], args[i+1:]
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	}
	if len(cmd) == 0 {
		return usage("exec", errors.New("no command given: want [-t] NAME -- CMD [ARG...]"))
	}
	req := &control.Request{Verb: "exec", Name: name, Args: cmd}
	if *tty {
		if !isTerminal(os.Stdin) {
			fmt.Fprintln(os.Stderr, "metainit exec -t: standard input is not a terminal")
			return exitUsage
		}
		req.Tty = true
		if term := os.Getenv("TERM"); term != "" {
			req.Env = []string{"TERM=" + term}
		}
		resp, err := attach(c, req, false)
		if code := report("exec", resp, err); code != exitOK {
			return code
		}
		return resp.ExitCode
	}
	resp, code := call(c, req, os.Stdin, os.Stdout, os.Stderr)
	if code != exitOK {
		return code
	}
	return resp.ExitCode
}
