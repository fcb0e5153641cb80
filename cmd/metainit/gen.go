package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/metainit/metainit/specs"
)

func cmdSpec(args []string) int {
	fs := flag.NewFlagSet("spec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kind := fs.String("init", "auto", "the init system")
	rootfs := fs.String("rootfs", "rootfs", "root.path of the spec")
	host := fs.String("hostname", "", "the partition's hostname")
	if err := fs.Parse(args); err != nil {
		return usage("spec", err)
	}
	if fs.NArg() > 0 {
		return usage("spec", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	wd, _ := os.Getwd()
	s, err := specs.Generate(specs.Options{Kind: *kind, Rootfs: *rootfs, Hostname: *host, BundleDir: wd})
	if err != nil {
		fmt.Fprintf(os.Stderr, "metainit spec: %v\n", err)
		return exitFailure
	}
	return printJSON(s)
}

func cmdCompletion(args []string) int {
	if len(args) != 1 || args[0] != "bash" {
		return usage("completion", fmt.Errorf("only bash is supported: metainit completion bash"))
	}
	var names, withPart []string
	for _, v := range verbs {
		names = append(names, v.name)
		if v.partition {
			withPart = append(withPart, v.name)
		}
	}
	fmt.Printf(`# bash completion for metainit; source it, or install it as
# /usr/share/bash-completion/completions/metainit
_metainit() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "%s" -- "$cur"))
		return
	fi
	case "${COMP_WORDS[1]}" in
	%s)
		COMPREPLY=($(compgen -W "$(metainit list --names 2>/dev/null)" -- "$cur"));;
	help)
		COMPREPLY=($(compgen -W "%s" -- "$cur"));;
	spec)
		COMPREPLY=($(compgen -W "--init --rootfs --hostname systemd runit sysvinit busybox generic auto" -- "$cur"));;
	*)
		COMPREPLY=($(compgen -f -- "$cur"));;
	esac
}
complete -F _metainit metainit
`, strings.Join(names, " "), strings.Join(withPart, "|"), strings.Join(names, " "))
	return exitOK
}

// cmdMan writes metainit(8) from the verb table, the same source as help.
func cmdMan(args []string) int {
	esc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\e`), "-", `\-`) }
	fmt.Printf(".TH METAINIT 8 %q \"metainit %s\" \"System Administration\"\n", time.Now().Format("2006-01-02"), version)
	fmt.Println(".SH NAME\nmetainit \\- a PID 1 that boots several unmodified init systems side by side")
	fmt.Println(".SH SYNOPSIS\n.B metainit\n.I VERB\n[\\fIARGS\\fR]")
	fmt.Println(".SH DESCRIPTION\nBooted by the kernel with \\fBinit=/sbin/metainit\\fR, metainit starts every OCI bundle in")
	fmt.Println("\\fI/etc/metainit/partitions/NAME/\\fR as a partition: its init runs as PID 1 of its own PID, mount,")
	fmt.Println("cgroup, UTS and IPC namespaces. Run as a command, metainit controls a running instance over")
	fmt.Println("\\fI/run/metainit/control.sock\\fR (\\fB\\-\\-socket\\fR or \\fBMETAINIT_SOCKET\\fR).")
	fmt.Println(".SH VERBS")
	for _, v := range verbs {
		fmt.Printf(".TP\n.B %s\n", v.name)
		if v.args != "" {
			fmt.Printf(".I %s\n", esc(v.args))
		}
		fmt.Printf(".br\n%s\n", esc(v.help))
	}
	fmt.Println(".SH SIGNALS\nSIGINT (Ctrl\\-Alt\\-Del) and SIGTERM reboot; SIGUSR2 and SIGPWR power off; SIGUSR1 halts;")
	fmt.Println("SIGHUP reloads the partitions directory; other signals are ignored.")
	fmt.Println(".SH KERNEL COMMAND LINE\n\\fBmetainit.partitions=\\fIa,b\\fR, \\fBmetainit.skip=\\fIc\\fR, \\fBmetainit.rescue=1\\fR,")
	fmt.Println("\\fBmetainit.debug=1\\fR, \\fBmetainit.partitions\\-dir=\\fIPATH\\fR.")
	fmt.Println(".SH EXIT STATUS\n0 success, 1 failure, 2 usage; \\fBexec\\fR returns the command's own exit code.")
	fmt.Println(".SH FILES\n.TP\n.I /etc/metainit/partitions/NAME/config.json\nan OCI runtime bundle; settings are \\fBorg.metainit.*\\fR annotations")
	fmt.Println(".TP\n.I /var/log/metainit/NAME.log\nwhat the partition's console printed")
	fmt.Println(".SH SEE ALSO\n.BR systemd-nspawn (1),\n.BR lxc (7),\n.BR runc (8)")
	return exitOK
}

// cmdCheck checks bundles: a bundle dir (with config.json), or a partitions
// dir (every subdirectory), default /etc/metainit/partitions.
func cmdCheck(args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fix := fs.Bool("fix", false, "apply the fixes that concern config.json (the old file is kept as config.json.orig)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usage("check", err)
	}
	targets := fs.Args()
	if len(targets) == 0 {
		targets = []string{defaultPartitions}
	}
	var bundles []string
	for _, t := range targets {
		if _, err := os.Stat(filepath.Join(t, "config.json")); err == nil {
			bundles = append(bundles, t)
			continue
		}
		entries, err := os.ReadDir(t)
		if err != nil {
			fmt.Fprintf(os.Stderr, "metainit check: %v\n", err)
			return exitFailure
		}
		for _, e := range entries {
			if e.IsDir() {
				bundles = append(bundles, filepath.Join(t, e.Name()))
			}
		}
	}
	failed := false
	var reports []*specs.Report
	for _, b := range bundles {
		r := specs.Check(b)
		if *fix {
			n, err := r.Fix()
			if err != nil {
				fmt.Fprintf(os.Stderr, "metainit check: %s: %v\n", b, err)
				failed = true
				continue
			}
			if n > 0 {
				fmt.Fprintf(os.Stderr, "%s: applied %d fixes to config.json (old file: config.json.orig)\n", b, n)
			}
			r = specs.Check(b) // what is left
		}
		failed = failed || r.Failed()
		reports = append(reports, r)
	}
	if *asJSON {
		printJSON(reports)
	} else {
		for _, r := range reports {
			verdict := "ok"
			if r.Failed() {
				verdict = "WOULD FAIL"
			}
			fmt.Printf("%s (%s): %s, %d findings\n", r.Bundle, dash(r.Kind), verdict, len(r.Findings))
			for _, f := range r.Findings {
				fmt.Printf("  %s\n", strings.ReplaceAll(f.String(), "\n", "\n  "))
			}
		}
	}
	if failed {
		return exitFailure
	}
	return exitOK
}
