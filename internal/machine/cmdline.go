package machine

import (
	"fmt"
	"os"
	"strings"

	"github.com/metainit/metainit/partition"
)

// Options metainit reads from the kernel command line (in --nested mode,
// from --cmdline). Documented in README.md.
type cmdline struct {
	sel           partition.Selection
	rescue        bool
	debug         bool
	partitionsDir string
}

// parseCmdline reads metainit.* words; others belong to the kernel or to
// other programs and are ignored. Bad values are reported and skipped.
func parseCmdline(s string, logf func(string, ...any)) cmdline {
	var c cmdline
	list := func(v string) []string {
		var out []string
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
		return out
	}
	for _, w := range strings.Fields(s) {
		key, val, hasVal := strings.Cut(w, "=")
		if !strings.HasPrefix(key, "metainit.") {
			continue
		}
		flag := !hasVal || val == "1" || val == "yes" || val == "true"
		switch key {
		case "metainit.partitions":
			c.sel.Only = list(val)
		case "metainit.skip":
			c.sel.Skip = list(val)
		case "metainit.rescue":
			c.rescue = flag
		case "metainit.debug":
			c.debug = flag
		case "metainit.partitions-dir":
			if strings.HasPrefix(val, "/") {
				c.partitionsDir = val
			} else {
				logf("kernel command line: %s: not an absolute path; ignored", w)
			}
		default:
			logf("kernel command line: unknown option %s; ignored", w)
		}
	}
	return c
}

func (c cmdline) String() string {
	return fmt.Sprintf("partitions=%v skip=%v rescue=%v debug=%v partitions-dir=%q",
		c.sel.Only, c.sel.Skip, c.rescue, c.debug, c.partitionsDir)
}

// kernelCmdline reads /proc/cmdline.
func kernelCmdline() string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	return string(b)
}
