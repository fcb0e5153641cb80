package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/metainit/metainit/internal/machine"
	"github.com/metainit/metainit/internal/pid1"
)

const (
	defaultPartitions = "/etc/metainit/partitions"
	defaultRunDir     = "/run/metainit"
	defaultLogDir     = "/var/log/metainit"
)

type bootFlags struct {
	fs                                 *flag.FlagSet
	nested                             bool
	partitions, runDir, logDir, cgroup string
	cmdline, root                      string
}

func newBootFlags() *bootFlags {
	f := &bootFlags{fs: flag.NewFlagSet("boot", flag.ContinueOnError)}
	f.fs.SetOutput(io.Discard)
	f.fs.BoolVar(&f.nested, "nested", false, "run as PID 1 of new PID, mount and UTS namespaces of this machine")
	f.fs.StringVar(&f.partitions, "partitions", defaultPartitions, "the partitions `dir`: one bundle per subdirectory")
	f.fs.StringVar(&f.runDir, "run-dir", defaultRunDir, "where the control socket and runtime state live")
	f.fs.StringVar(&f.logDir, "log-dir", "", "where logs go (default "+defaultLogDir+"; nested: RUN-DIR/log)")
	f.fs.StringVar(&f.root, "root", "", "nested: boot with `DIR` as the root filesystem, as a machine booted from it (the other paths are then inside DIR)")
	f.fs.StringVar(&f.cmdline, "cmdline", "", "metainit.* options as on a kernel command line (nested only)")
	f.fs.StringVar(&f.cgroup, "cgroup-parent", "", "the cgroup all partitions go below (default metainit; nested: metainit-nested-PID)")
	return f
}

// bootConfig reads boot's flags as PID 1 sees them.
func bootConfig(args []string, nested bool) (machine.Config, error) {
	f := newBootFlags()
	if len(args) > 0 && args[0] == "boot" {
		args = args[1:]
	} else {
		args = nil // arguments from the kernel command line: not ours
	}
	err := f.fs.Parse(args)
	cfg := machine.Config{
		Nested:        nested,
		PartitionsDir: abs(f.partitions),
		RunDir:        abs(f.runDir),
		LogDir:        abs(f.logDir),
		CgroupParent:  f.cgroup,
		Cmdline:       f.cmdline,
		Root:          abs(f.root),
	}
	if cfg.LogDir == "" {
		cfg.LogDir = defaultLogDir
		if nested {
			cfg.LogDir = filepath.Join(cfg.RunDir, "log")
		}
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "metainit"
	}
	return cfg, err
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// cmdBoot is `metainit boot` run by a user, not by the kernel: only --nested
// makes sense there.
func cmdBoot(args []string) int {
	f := newBootFlags()
	if err := f.fs.Parse(args); err != nil {
		return usage("boot", err)
	}
	if !f.nested {
		fmt.Fprintln(os.Stderr, "metainit boot: not PID 1; use --nested to boot in new namespaces of this machine, or boot the machine with init=/sbin/metainit")
		return 2
	}
	if f.cgroup == "" {
		f.cgroup = "metainit-nested-" + strconv.Itoa(os.Getpid())
	}
	child := []string{"boot", "--nested", "--partitions", abs(f.partitions), "--run-dir", abs(f.runDir), "--cgroup-parent", f.cgroup}
	if f.logDir != "" {
		child = append(child, "--log-dir", abs(f.logDir))
	}
	if f.cmdline != "" {
		child = append(child, "--cmdline", f.cmdline)
	}
	hostRunDir := abs(f.runDir)
	if f.root != "" {
		child = append(child, "--root", abs(f.root))
		hostRunDir = filepath.Join(abs(f.root), abs(f.runDir))
	}
	log := pid1.NewLog()
	cleanup := func() {
		// The instance removes its cgroups itself; this catches an instance that died.
		pid1.RemoveCgroupTree(f.cgroup, log.Printf)
		_ = os.Remove(filepath.Join(hostRunDir, "control.sock"))
	}
	return pid1.RunNested(child, cleanup, log.Printf)
}
