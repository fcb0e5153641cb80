package partition

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Console is what a partition prints on its /dev/console, kept three ways: a
// ring of recent lines in memory (for logs and status), a log file rotated at
// a size limit, and live to whoever is attached (console, logs -f). It
// belongs to the partition, not to one run of its init: the log and the
// attached operators carry on across restarts.
type Console struct {
	name string
	path string

	mu       sync.Mutex
	ring     []Line
	ringSize int
	partial  []byte
	partialT time.Time
	file     *os.File
	fileSize int64
	subs     map[chan []byte]struct{}
}

// Line is one line of console output and when it was read.
type Line struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

const (
	ringMax    = 1 << 20 // bytes of lines kept in memory per partition
	logMax     = 8 << 20 // a log file is rotated (to .1) at this size
	subBacklog = 256     // chunks queued for a slow reader before it is dropped
)

func newConsole(name, logDir string) *Console {
	return &Console{name: name, path: filepath.Join(logDir, name+".log"), subs: map[chan []byte]struct{}{}}
}

// Write takes a chunk read from the console. It never blocks on a reader.
func (c *Console) Write(chunk []byte) (int, error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.appendFile(chunk)
	for p := chunk; len(p) > 0; {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(c.partial) == 0 {
				c.partialT = now
			}
			c.partial = append(c.partial, p...)
			break
		}
		t := now
		if len(c.partial) > 0 {
			t = c.partialT
		}
		c.addLine(Line{Time: t, Text: strings.TrimRight(string(c.partial)+string(p[:i]), "\r")})
		c.partial = c.partial[:0]
		p = p[i+1:]
	}
	for ch := range c.subs {
		select {
		case ch <- append([]byte(nil), chunk...):
		default:
			// A reader that cannot keep up is dropped, never waited for.
			delete(c.subs, ch)
			close(ch)
		}
	}
	return len(chunk), nil
}

func (c *Console) addLine(l Line) {
	c.ring = append(c.ring, l)
	c.ringSize += len(l.Text) + 1
	for c.ringSize > ringMax && len(c.ring) > 1 {
		c.ringSize -= len(c.ring[0].Text) + 1
		c.ring = c.ring[1:]
	}
}

// appendFile writes to <name>.log, rotating it to <name>.log.1 at logMax. A
// failing disk loses log lines, never the partition.
func (c *Console) appendFile(p []byte) {
	if c.file == nil {
		f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o640)
		if err != nil {
			return
		}
		fi, _ := f.Stat()
		c.file, c.fileSize = f, fi.Size()
	}
	if c.fileSize+int64(len(p)) > logMax {
		c.file.Close()
		c.file = nil
		_ = os.Rename(c.path, c.path+".1")
		c.appendFile(p)
		return
	}
	n, _ := c.file.Write(p)
	c.fileSize += int64(n)
}

// Lines returns the kept lines since since (zero: all), at most the last n
// (0: all), with the unfinished last line (a prompt, say) included.
func (c *Console) Lines(n int, since time.Time) []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := append([]Line(nil), c.ring...)
	if len(c.partial) > 0 {
		all = append(all, Line{Time: c.partialT, Text: string(c.partial)})
	}
	var out []Line
	for _, l := range all {
		if !l.Time.Before(since) {
			out = append(out, l)
		}
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Subscribe returns a channel of everything printed from now on; it is closed
// by Unsubscribe or when the reader falls behind.
func (c *Console) Subscribe() chan []byte {
	ch := make(chan []byte, subBacklog)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch
}

// Unsubscribe ends a subscription.
func (c *Console) Unsubscribe(ch chan []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.subs[ch]; ok {
		delete(c.subs, ch)
		close(ch)
	}
}

// Subscribers counts attached readers (tests watch it for leaks).
func (c *Console) Subscribers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.subs)
}

func (c *Console) String() string { return fmt.Sprintf("console of partition %s", c.name) }

// closeFile closes the log file; the next chunk opens it again.
func (c *Console) closeFile() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file != nil {
		c.file.Close()
		c.file = nil
	}
}

// pump copies a pty master into the console until the pty closes. It must
// never stop reading while the partition lives: a full pty blocks the init.
// Once the pty closes (the init is gone) the log file is closed too: a file
// left open for writing keeps the machine's shutdown from remounting /
// read-only.
func pump(master *os.File, c *Console) {
	defer func() { recover() }() //nolint:errcheck // logging must not take PID 1 down
	defer c.closeFile()
	defer master.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := master.Read(buf)
		if n > 0 {
			_, _ = c.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// holdConsole takes the pty master libcontainer sent and makes it fit for
// PID 1: non-blocking (so closing it ends the pump's read at once, with no
// thread left blocked) and with a slave-side fd of metainit's own, so the
// master never reads EIO while the partition's init happens to have
// /dev/console closed (systemd closes and reopens it as it boots).
func holdConsole(received *os.File) (master, peer *os.File, err error) {
	defer received.Close()
	fd, err := unix.FcntlInt(received.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("dup pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	peerFd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("open pty peer: %w", errno)
	}
	return os.NewFile(uintptr(fd), "console-master"), os.NewFile(peerFd, "console-peer"), nil
}
