package partition

// This file is metainit's one door to libcontainer: it turns a bundle into a
// libcontainer config and starts, signals and destroys the container. The rest
// of metainit speaks of partitions, never of libcontainer types.

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	// Device rules in the cgroup (the cgroup manager refuses them without it).
	_ "github.com/opencontainers/cgroups/devices"
	// The C half of "metainit init": joins namespaces before the Go runtime starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// ContainerInit is the entry of "metainit init", the process libcontainer
// re-executes inside a new partition. It never returns.
//
// Until it calls execve, this Go program is already PID 1 of the partition,
// and metainit may already send it a stop request (Start returns a moment
// before the exec). The Go runtime would exit on SIGTERM, SIGINT, SIGHUP or
// SIGQUIT with status 2: the partition would die instead of being asked to
// stop, and look as if it had crashed. Caught here, they are dropped; the
// stop request is repeated until the real init has handled it. execve resets
// caught signals to their defaults, so the init starts as it would anywhere.
func ContainerInit() {
	signal.Notify(make(chan os.Signal, 1), unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT)
	libcontainer.Init()
}

// hostMount is where a partition finds what metainit shares with it (today:
// the notify socket), as systemd-nspawn does with /run/host.
const hostMount = "/run/host"

// launchSpec is everything needed to create one container for one start.
type launchSpec struct {
	id       string
	stateDir string
	cgroup   string // absolute cgroup path, e.g. /metainit/web
	hostDir  string // bound read-only at /run/host
	extraEnv []string
	logf     func(format string, args ...any)
}

// buildConfig turns the bundle's spec into a libcontainer config and the init
// process. The bundle's spec is not modified.
func buildConfig(b *Bundle, rootfs string, ls launchSpec) (*configs.Config, *libcontainer.Process, error) {
	spec, err := copySpec(b.Spec)
	if err != nil {
		return nil, nil, err
	}
	// specconv resolves relative paths against the working directory; PID 1's is
	// "/", so resolve against the bundle here.
	spec.Root.Path = rootfs
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if isBind(m) && m.Source != "" && !filepath.IsAbs(m.Source) {
			m.Source = filepath.Join(b.Dir, m.Source)
		}
	}
	spec.Mounts = append(spec.Mounts, specs.Mount{
		Destination: hostMount, Type: "bind", Source: ls.hostDir,
		Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
	})
	if spec.Linux.CgroupsPath != "" {
		ls.logf("linux.cgroupsPath %q ignored: metainit places partitions at %s", spec.Linux.CgroupsPath, ls.cgroup)
	}
	spec.Linux.CgroupsPath = ls.cgroup

	p := spec.Process
	p.Env = mergeEnv(p.Env, ls.extraEnv)
	if p.OOMScoreAdj == nil {
		// PID 1 protects itself from the OOM killer and oom_score_adj is inherited:
		// give partitions the ordinary value unless the spec says otherwise.
		zero := 0
		p.OOMScoreAdj = &zero
	}
	if len(p.Rlimits) == 0 {
		// Go raises its own RLIMIT_NOFILE; do not pass that on.
		p.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 524288}}
	}
	if p.Capabilities != nil {
		dropUnheldCaps(p.Capabilities, ls.logf)
	}
	clampRlimits(p.Rlimits, ls.logf)

	config, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: ls.id,
		Spec:       spec,
	})
	if err != nil {
		return nil, nil, err
	}
	proc, err := newProcess(p)
	if err != nil {
		return nil, nil, err
	}
	proc.Init = true
	return config, proc, nil
}

func isBind(m *specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func copySpec(s *specs.Spec) (*specs.Spec, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var c specs.Spec
	return &c, json.Unmarshal(data, &c)
}

// mergeEnv returns env with extra added; extra wins for names in both.
func mergeEnv(env, extra []string) []string {
	out := make([]string, 0, len(env)+len(extra))
	names := map[string]bool{}
	for _, e := range extra {
		names[strings.SplitN(e, "=", 2)[0]] = true
	}
	for _, e := range env {
		if !names[strings.SplitN(e, "=", 2)[0]] {
			out = append(out, e)
		}
	}
	return append(out, extra...)
}

// newProcess maps the spec's process onto libcontainer's (as runc does).
func newProcess(p *specs.Process) (*libcontainer.Process, error) {
	lp := &libcontainer.Process{
		Args:            p.Args,
		Env:             p.Env,
		UID:             int(p.User.UID),
		GID:             int(p.User.GID),
		Cwd:             p.Cwd,
		NoNewPrivileges: &p.NoNewPrivileges,
		AppArmorProfile: p.ApparmorProfile,
		Label:           p.SelinuxLabel,
		Scheduler:       p.Scheduler,
		IOPriority:      p.IOPriority,
	}
	if lp.Cwd == "" {
		lp.Cwd = "/"
	}
	if p.ConsoleSize != nil {
		lp.ConsoleWidth, lp.ConsoleHeight = uint16(p.ConsoleSize.Width), uint16(p.ConsoleSize.Height)
	}
	if c := p.Capabilities; c != nil {
		lp.Capabilities = &configs.Capabilities{
			Bounding: c.Bounding, Effective: c.Effective, Inheritable: c.Inheritable,
			Permitted: c.Permitted, Ambient: c.Ambient,
		}
	}
	for _, g := range p.User.AdditionalGids {
		lp.AdditionalGroups = append(lp.AdditionalGroups, int(g))
	}
	for i, r := range p.Rlimits {
		res, ok := rlimits[r.Type]
		if !ok {
			return nil, fmt.Errorf("field process.rlimits[%d].type: unknown rlimit %q", i, r.Type)
		}
		lp.Rlimits = append(lp.Rlimits, configs.Rlimit{Type: res, Hard: r.Hard, Soft: r.Soft})
	}
	return lp, nil
}

var rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": 10,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15, "RLIMIT_SIGPENDING": 11, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

// heldCaps is metainit's own bounding set: a partition cannot be given more,
// and asking libcontainer for more fails the whole start.
func heldCaps() (map[string]bool, error) {
	c, err := capability.NewPid2(0)
	if err != nil {
		return nil, err
	}
	if err := c.Load(); err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for _, cp := range capability.ListKnown() {
		if c.Get(capability.BOUNDING, cp) {
			held["CAP_"+strings.ToUpper(cp.String())] = true
		}
	}
	return held, nil
}

// dropUnheldCaps removes, with a warning, capabilities metainit does not hold
// (this kind of VM lacks CAP_SYS_RESOURCE, for example).
func dropUnheldCaps(c *specs.LinuxCapabilities, logf func(string, ...any)) {
	held, err := heldCaps()
	if err != nil {
		logf("cannot read own capabilities, passing the spec's on: %v", err)
		return
	}
	dropped := map[string]bool{}
	filter := func(list []string) []string {
		out := list[:0:0]
		for _, name := range list {
			if held[strings.ToUpper(name)] {
				out = append(out, name)
			} else {
				dropped[name] = true
			}
		}
		return out
	}
	c.Bounding, c.Effective, c.Permitted = filter(c.Bounding), filter(c.Effective), filter(c.Permitted)
	c.Inheritable, c.Ambient = filter(c.Inheritable), filter(c.Ambient)
	if len(dropped) > 0 {
		names := make([]string, 0, len(dropped))
		for n := range dropped {
			names = append(names, n)
		}
		logf("warning: dropping capabilities metainit itself lacks: %s", strings.Join(names, ", "))
	}
}

// clampRlimits lowers hard limits above metainit's own when it lacks
// CAP_SYS_RESOURCE (raising a hard limit needs it; the start would fail).
func clampRlimits(rl []specs.POSIXRlimit, logf func(string, ...any)) {
	if held, err := heldCaps(); err != nil || held["CAP_SYS_RESOURCE"] {
		return
	}
	for i := range rl {
		res, ok := rlimits[rl[i].Type]
		if !ok {
			continue
		}
		var own unix.Rlimit
		if unix.Getrlimit(res, &own) != nil || rl[i].Hard <= own.Max {
			continue
		}
		logf("warning: %s hard limit %d lowered to metainit's own %d (no CAP_SYS_RESOURCE)", rl[i].Type, rl[i].Hard, own.Max)
		rl[i].Hard = own.Max
		rl[i].Soft = min(rl[i].Soft, own.Max)
	}
}

// newUUID returns a random RFC 4122 version 4 UUID for container_uuid.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// createContainer creates the libcontainer container, first destroying a
// stale one of the same id left by an earlier run of metainit.
func createContainer(ls launchSpec, config *configs.Config) (*libcontainer.Container, error) {
	if old, err := libcontainer.Load(ls.stateDir, ls.id); err == nil {
		ls.logf("destroying stale container state from an earlier run")
		_ = old.Signal(unix.SIGKILL)
		if err := old.Destroy(); err != nil {
			return nil, fmt.Errorf("destroy stale container: %w", err)
		}
	} else if !errors.Is(err, libcontainer.ErrNotExist) {
		// A broken state directory: remove it; nothing else can use it.
		_ = os.RemoveAll(filepath.Join(ls.stateDir, ls.id))
	}
	return libcontainer.Create(ls.stateDir, ls.id, config)
}
