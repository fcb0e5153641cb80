package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// execWatcher reports, with the kernel's own timestamp, every exec(2) of a
// program named comm. It listens on the kernel's process events connector
// (NETLINK_CONNECTOR, CN_IDX_PROC), which stamps each event with
// ktime_get_ns(): CLOCK_MONOTONIC, the clock of monoNow. So "the init runs
// its own code" is seen the same way for every tool: the moment the kernel
// finished exec'ing the init's binary, whoever asked for it.
type execWatcher struct {
	fd     int
	comm   string
	ch     chan execEvent
	closed atomic.Bool
	lost   atomic.Int64 // events the kernel dropped (ENOBUFS); counted, not fatal
}

// execEvent is one exec of the watched program.
type execEvent struct {
	Pid    int
	Mono   time.Duration // CLOCK_MONOTONIC of the exec, from the kernel
	Cgroup string        // /proc/PID/cgroup at the time it was seen
}

const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventExec     = 0x00000002
	nlmsgHdrLen       = 16
	cnMsgLen          = 20
)

func newExecWatcher(comm string) (*execWatcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	// A receive timeout lets the reader notice Close.
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector: bind: %w", err)
	}
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	le := binary.NativeEndian
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint16(msg[4:], unix.NLMSG_DONE)
	le.PutUint32(msg[12:], uint32(os.Getpid()))
	cn := msg[nlmsgHdrLen:]
	le.PutUint32(cn[0:], cnIdxProc)
	le.PutUint32(cn[4:], cnValProc)
	le.PutUint16(cn[16:], 4)
	le.PutUint32(cn[cnMsgLen:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("proc connector: listen: %w", err)
	}
	w := &execWatcher{fd: fd, comm: comm, ch: make(chan execEvent, 4096)}
	go w.loop()
	return w, nil
}

func (w *execWatcher) loop() {
	buf := make([]byte, 64<<10)
	le := binary.NativeEndian
	defer unix.Close(w.fd)
	defer close(w.ch)
	for !w.closed.Load() {
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		if err != nil {
			switch {
			case errors.Is(err, unix.ENOBUFS):
				w.lost.Add(1)
				continue
			case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
				continue
			}
			return
		}
		for b := buf[:n]; len(b) >= nlmsgHdrLen; {
			l := int(le.Uint32(b[0:]))
			if l < nlmsgHdrLen || l > len(b) {
				break
			}
			m := b[nlmsgHdrLen:l]
			b = b[(l+3)&^3:]
			if len(m) < cnMsgLen+16+8 {
				continue
			}
			ev := m[cnMsgLen:]
			if le.Uint32(ev[0:]) != procEventExec {
				continue
			}
			ts := time.Duration(le.Uint64(ev[8:]))
			pid := int(le.Uint32(ev[16:]))
			tgid := int(le.Uint32(ev[20:]))
			if pid != tgid {
				continue
			}
			comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
			if err != nil || strings.TrimSpace(string(comm)) != w.comm {
				continue
			}
			cg, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
			select {
			case w.ch <- execEvent{Pid: pid, Mono: ts, Cgroup: string(cg)}:
			default: // nobody reads: drop rather than block the kernel's queue
			}
		}
	}
}

// drain forgets events seen so far.
func (w *execWatcher) drain() {
	for {
		select {
		case <-w.ch:
		default:
			return
		}
	}
}

// wait returns the first exec in cgroup /cg (in any hierarchy), or fails
// after timeout.
func (w *execWatcher) wait(cg string, timeout time.Duration) (execEvent, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-w.ch:
			if !ok {
				return ev, errors.New("proc connector closed")
			}
			if inCgroup(ev.Cgroup, cg) {
				return ev, nil
			}
		case <-t.C:
			return execEvent{}, fmt.Errorf("no exec of %s in cgroup %s within %s", w.comm, cg, timeout)
		}
	}
}

// inCgroup reports whether a /proc/PID/cgroup text puts the process in /cg.
func inCgroup(text, cg string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasSuffix(line, ":"+cg) {
			return true
		}
	}
	return false
}

// waitN returns the last of n execs in cgroups whose lines contain prefix.
func (w *execWatcher) waitN(prefix string, n int, timeout time.Duration) (time.Duration, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	seen := map[int]bool{}
	var last time.Duration
	for len(seen) < n {
		select {
		case ev, ok := <-w.ch:
			if !ok {
				return 0, errors.New("proc connector closed")
			}
			if strings.Contains(ev.Cgroup, prefix) && !seen[ev.Pid] {
				seen[ev.Pid] = true
				last = max(last, ev.Mono)
			}
		case <-t.C:
			return 0, fmt.Errorf("%d of %d execs of %s under %s within %s", len(seen), n, w.comm, prefix, timeout)
		}
	}
	return last, nil
}

// Close stops the watcher; its reader closes the socket within 200ms.
func (w *execWatcher) Close() { w.closed.Store(true) }

// monoNow reads CLOCK_MONOTONIC, the clock of the kernel's event stamps.
func monoNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}
