package specs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/metainit/metainit/partition"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
)

// Severity says whether a finding keeps an init from booting or shutting
// down (Error) or only limits it (Warning).
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// A Finding is one thing wrong with a bundle: where, what, and what to change.
type Finding struct {
	Severity Severity `json:"severity"`
	Field    string   `json:"field"`
	Problem  string   `json:"problem"`
	Fix      string   `json:"fix"`
	// apply changes the spec the way Fix says; nil when the fix is outside
	// config.json (in the rootfs, say).
	apply func(*rspec.Spec)
}

func (f Finding) String() string {
	return fmt.Sprintf("%s: %s: %s\n    fix: %s", f.Severity, f.Field, f.Problem, f.Fix)
}

// Fixable reports whether --fix can apply the finding to config.json.
func (f Finding) Fixable() bool { return f.apply != nil }

// Report is what Check found in one bundle.
type Report struct {
	Bundle   string    `json:"bundle"`
	Kind     string    `json:"kind,omitempty"`
	Findings []Finding `json:"findings"`
	spec     *rspec.Spec
}

// Failed reports whether any finding is an error.
func (r *Report) Failed() bool {
	for _, f := range r.Findings {
		if f.Severity == Error {
			return true
		}
	}
	return false
}

// Check validates a bundle without starting it: everything LoadBundle
// refuses, and the settings that keep an unmodified init from booting or
// shutting down.
func Check(dir string) *Report {
	r := &Report{Bundle: dir}
	b, err := partition.LoadBundle(dir)
	if err != nil && (b == nil || b.Spec == nil) {
		r.add(Error, "config.json", err.Error(), "correct the file; `metainit spec --init KIND` writes one that boots", nil)
		return r
	}
	r.spec = b.Spec
	if err != nil {
		// The spec parsed; report LoadBundle's objection, then look further.
		r.add(Error, fieldOf(err), err.Error(), "see the message", nil)
	} else {
		r.Kind = string(b.Settings.Kind)
	}
	r.checkSpec(b)
	if err == nil {
		r.checkRootfs(b)
	}
	return r
}

func (r *Report) add(sev Severity, field, problem, fix string, apply func(*rspec.Spec)) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Field: field, Problem: problem, Fix: fix, apply: apply})
}

var fieldRE = regexp.MustCompile(`field ([A-Za-z0-9_.\[\]]+)|annotations\["[^"]+"\]`)

func fieldOf(err error) string {
	if m := fieldRE.FindStringSubmatch(err.Error()); m != nil {
		if m[1] != "" {
			return m[1]
		}
		return m[0]
	}
	return "config.json"
}

// initCaps are the capabilities whose absence stops an init outright.
var initCaps = []string{"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SYS_CHROOT", "CAP_KILL"}

func (r *Report) checkSpec(b *partition.Bundle) {
	s := b.Spec
	if s.Root != nil && s.Root.Readonly {
		r.add(Error, "root.readonly", "the root is read-only; an init writes to it (machine-id, utmp, journal, runit's supervise dirs)",
			`set "readonly": false`, func(s *rspec.Spec) { s.Root.Readonly = false })
	}
	if p := s.Process; p != nil {
		if p.NoNewPrivileges {
			r.add(Error, "process.noNewPrivileges", "no process of the partition could ever gain privileges (setuid programs, services run as root by a non-root helper)",
				`set "noNewPrivileges": false`, func(s *rspec.Spec) { s.Process.NoNewPrivileges = false })
		}
		var missing []string
		for _, c := range initCaps {
			if p.Capabilities == nil || !slices.Contains(p.Capabilities.Bounding, c) || !slices.Contains(p.Capabilities.Effective, c) || !slices.Contains(p.Capabilities.Permitted, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			r.add(Error, "process.capabilities", "lacks "+strings.Join(missing, ", ")+": an init mounts, manages cgroups, switches users and calls reboot(2) (without CAP_SYS_BOOT runit and sysvinit hang at shutdown)",
				"give the bounding, effective and permitted sets the capabilities `metainit spec` lists",
				func(s *rspec.Spec) {
					caps := append([]string(nil), allCaps...)
					s.Process.Capabilities = &rspec.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
				})
		}
		if p.Capabilities != nil && slices.Contains(p.Capabilities.Bounding, "CAP_DAC_READ_SEARCH") {
			r.add(Warning, "process.capabilities", "CAP_DAC_READ_SEARCH lets the partition open any file of a file system it has a mount of, by handle (open_by_handle_at: the \"shocker\" escape from a directory rootfs)",
				"drop CAP_DAC_READ_SEARCH unless the partition needs it",
				func(s *rspec.Spec) {
					c := s.Process.Capabilities
					drop := func(l []string) []string {
						return slices.DeleteFunc(l, func(x string) bool { return x == "CAP_DAC_READ_SEARCH" })
					}
					c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient = drop(c.Bounding), drop(c.Effective), drop(c.Permitted), drop(c.Inheritable), drop(c.Ambient)
				})
		}
		if !p.Terminal {
			r.add(Warning, "process.terminal", "no console: systemd's console-getty and any getty on /dev/console fail, and `metainit console` has nothing to attach to",
				`set "terminal": true`, func(s *rspec.Spec) { s.Process.Terminal = true })
		}
	}
	if s.Linux == nil {
		return
	}
	has := func(t rspec.LinuxNamespaceType) bool {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == t {
				return true
			}
		}
		return false
	}
	if !has(rspec.CgroupNamespace) {
		r.add(Error, "linux.namespaces", "no cgroup namespace: the init would see and change the machine's cgroup tree",
			`add {"type": "cgroup"}`, func(s *rspec.Spec) {
				s.Linux.Namespaces = append(s.Linux.Namespaces, rspec.LinuxNamespace{Type: rspec.CgroupNamespace})
			})
	}
	if has(rspec.NetworkNamespace) {
		r.add(Warning, "linux.namespaces", "a network namespace of its own: the partition has only a loopback interface (metainit configures no network)",
			`remove {"type": "network"} to share the machine's network`, func(s *rspec.Spec) {
				s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n rspec.LinuxNamespace) bool { return n.Type == rspec.NetworkNamespace })
			})
	}
	cg, sys, run := -1, -1, -1
	for i, m := range s.Mounts {
		switch m.Destination {
		case "/sys/fs/cgroup":
			cg = i
		case "/sys":
			sys = i
		case "/run":
			run = i
		}
	}
	switch {
	case cg < 0:
		r.add(Error, "mounts", "no cgroup file system at /sys/fs/cgroup: systemd cannot manage its services",
			`add {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "rw"]}`,
			func(s *rspec.Spec) {
				s.Mounts = append(s.Mounts, rspec.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "rw"}})
			})
	case slices.Contains(s.Mounts[cg].Options, "ro"):
		r.add(Error, fmt.Sprintf("mounts[%d].options", cg), "the cgroup mount is read-only: systemd fails with \"Failed to create /init.scope control group: Read-only file system\"",
			`replace "ro" with "rw"`, func(s *rspec.Spec) {
				for i, m := range s.Mounts {
					if m.Destination == "/sys/fs/cgroup" {
						s.Mounts[i].Options = append(slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" || o == "rw" }), "rw")
					}
				}
			})
	}
	if sys >= 0 && !has(rspec.NetworkNamespace) && !slices.Contains(s.Mounts[sys].Options, "ro") {
		r.add(Error, fmt.Sprintf("mounts[%d].options", sys), "/sys is writable while the partition shares the machine's network: its udev or networkd would reconfigure the machine's devices",
			`add "ro" to the /sys mount`, func(s *rspec.Spec) {
				for i, m := range s.Mounts {
					if m.Destination == "/sys" {
						s.Mounts[i].Options = append(slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "rw" }), "ro")
					}
				}
			})
	}
	if run < 0 {
		r.add(Warning, "mounts", "no tmpfs on /run: sysvinit and runit expect an empty, writable /run at boot (systemd mounts one itself)",
			`add {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]}`,
			func(s *rspec.Spec) {
				s.Mounts = append(s.Mounts, rspec.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755"}})
			})
	}
	// A device node the spec creates but its cgroup rules deny: the node is
	// there and every open of it fails with EPERM. (metainit, like runc,
	// allows the standard nodes itself: null, zero, full, random, urandom,
	// tty, console, ptmx, pts.)
	for i, d := range s.Linux.Devices {
		if !deviceAllowed(s.Linux.Resources, d) {
			dev := d
			r.add(Error, fmt.Sprintf("linux.devices[%d]", i), fmt.Sprintf("%s is created but linux.resources.devices denies it: opening it fails with EPERM", d.Path),
				fmt.Sprintf(`add {"allow": true, "type": %q, "major": %d, "minor": %d, "access": "rwm"} to linux.resources.devices`, d.Type, d.Major, d.Minor),
				func(s *rspec.Spec) {
					if s.Linux.Resources == nil {
						s.Linux.Resources = &rspec.LinuxResources{}
					}
					major, minor := dev.Major, dev.Minor
					s.Linux.Resources.Devices = append(s.Linux.Resources.Devices,
						rspec.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: "rwm"})
				})
		}
	}
	if _, ok := s.Annotations[partition.AnnInit]; !ok {
		kind := string(b.Settings.Kind)
		r.add(Warning, `annotations["org.metainit.init"]`, "no init kind given; detected from process.args[0]: "+dash(kind),
			`set "org.metainit.init" so a changed rootfs cannot change how the partition is stopped`,
			func(s *rspec.Spec) {
				if kind == "" {
					return
				}
				if s.Annotations == nil {
					s.Annotations = map[string]string{}
				}
				s.Annotations[partition.AnnInit] = kind
			})
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var ttyRE = regexp.MustCompile(`\btty[0-9]+\b`)

// checkRootfs looks for gettys on virtual terminals a partition does not
// have: they fail and are respawned forever.
func (r *Report) checkRootfs(b *partition.Bundle) {
	switch b.Settings.Kind {
	case partition.KindSysvinit, partition.KindBusybox:
		f, err := os.Open(filepath.Join(b.Rootfs, "etc/inittab"))
		if err != nil {
			if b.Settings.Kind == partition.KindBusybox {
				r.add(Error, "rootfs/etc/inittab", "missing: busybox init then spawns shells on tty2-4, which a partition does not have",
					"ship an /etc/inittab (a ::sysinit: line and your ::respawn: services)", nil)
			}
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			parts := strings.SplitN(line, ":", 4)
			if len(parts) == 4 && strings.Contains(parts[2], "respawn") && ttyRE.MatchString(parts[0]+" "+parts[3]) {
				r.add(Error, fmt.Sprintf("rootfs/etc/inittab:%d", n), fmt.Sprintf("%q spawns a getty on %s, which a partition does not have: it fails and respawns forever", line, ttyRE.FindString(parts[0]+" "+parts[3])),
					"comment it out; for a login on the partition's console use `co:2345:respawn:/sbin/getty -L console 115200 vt100` (busybox: `console::respawn:/sbin/getty -L console 0 vt100`)", nil)
			}
		}
	case partition.KindRunit:
		for _, dir := range []string{"etc/service", "etc/runit/runsvdir/default"} {
			matches, _ := filepath.Glob(filepath.Join(b.Rootfs, dir, "getty-tty*"))
			for _, m := range matches {
				r.add(Error, "rootfs/"+dir+"/"+filepath.Base(m), "runit service for a getty on a virtual terminal the partition does not have: it fails and respawns forever",
					"remove the link; a partition's console is /dev/console", nil)
			}
			if len(matches) > 0 {
				break
			}
		}
	}
}

// Fix applies every fixable finding to the spec and writes config.json,
// keeping the old one as config.json.orig. It returns how many it applied.
func (r *Report) Fix() (int, error) {
	if r.spec == nil {
		return 0, fmt.Errorf("%s: config.json does not parse; nothing to fix", r.Bundle)
	}
	n := 0
	for _, f := range r.Findings {
		if f.apply != nil {
			f.apply(r.spec)
			n++
		}
	}
	if n == 0 {
		return 0, nil
	}
	file := filepath.Join(r.Bundle, "config.json")
	old, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(file+".orig", old, 0o644); err != nil {
		return 0, err
	}
	data, err := json.MarshalIndent(r.spec, "", "  ")
	if err != nil {
		return 0, err
	}
	return n, os.WriteFile(file, append(data, '\n'), 0o644)
}

// deviceAllowed applies the cgroup device rules in order, as the kernel's
// device controller does with runc's rules: the last matching rule wins, and
// with no rules at all everything is allowed.
func deviceAllowed(res *rspec.LinuxResources, d rspec.LinuxDevice) bool {
	if res == nil || len(res.Devices) == 0 {
		return true
	}
	allowed := false
	for _, rule := range res.Devices {
		if rule.Type != "" && rule.Type != "a" && rule.Type != d.Type {
			continue
		}
		if (rule.Major != nil && *rule.Major != d.Major) || (rule.Minor != nil && *rule.Minor != d.Minor) {
			continue
		}
		if rule.Access != "" && !strings.Contains(rule.Access, "r") && !strings.Contains(rule.Access, "w") {
			continue
		}
		allowed = rule.Allow
	}
	return allowed
}
