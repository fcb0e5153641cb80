// metainit is one static binary with three faces:
//
//   - PID 1 (of the machine, booted with init=/sbin/metainit, or of fresh
//     namespaces with `metainit boot --nested`): boots the partitions;
//   - "metainit init": the process libcontainer re-executes inside a new
//     partition before it becomes the partition's init;
//   - the control CLI: list, status, start, stop, exec, poweroff, ...
package main

import (
	"os"

	"github.com/metainit/metainit/internal/machine"
	"github.com/metainit/metainit/internal/pid1"
	"github.com/metainit/metainit/partition"
)

// init hands "metainit init" to libcontainer before anything else of
// metainit runs (libcontainer's nsenter has already run, in C, before the Go
// runtime started).
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		partition.ContainerInit() // never returns
	}
}

func main() {
	if os.Getpid() == 1 {
		// First, before anything can go wrong: no signal may end PID 1.
		sigs := pid1.CatchSignals()
		cfg, err := bootConfig(os.Args[1:], pid1.IsNested())
		if err != nil {
			// The kernel may pass arguments of its own; boot with defaults.
			pid1.NewLog().Printf("arguments %q: %v; booting with defaults", os.Args[1:], err)
		}
		machine.Boot(cfg, sigs) // never returns
	}
	os.Exit(run(os.Args[1:]))
}
