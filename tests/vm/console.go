package vm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Line is one line of a console, stamped with the time since qemu started.
type Line struct {
	At   time.Duration
	Text string
}

// Lines reads a console (the serial port) into timestamped lines, kept in
// memory for the timeline and written to a log as they come.
type Lines struct {
	conn  net.Conn
	start time.Time

	mu      sync.Mutex
	lines   []Line
	partial []byte
	changed chan struct{} // closed and replaced whenever lines change
	closed  bool
}

// NewLines starts reading conn; log receives every line with its stamp.
func NewLines(conn net.Conn, log io.WriteCloser, start time.Time) *Lines {
	l := &Lines{conn: conn, start: start, changed: make(chan struct{})}
	go func() {
		defer log.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				for _, ln := range l.add(buf[:n]) {
					fmt.Fprintf(log, "[%8.3f] %s\n", ln.At.Seconds(), ln.Text)
				}
			}
			if err != nil {
				l.mu.Lock()
				if len(l.partial) > 0 {
					ln := Line{time.Since(start), string(l.partial)}
					l.lines = append(l.lines, ln)
					fmt.Fprintf(log, "[%8.3f] %s\n", ln.At.Seconds(), ln.Text)
					l.partial = nil
				}
				l.closed = true
				close(l.changed)
				l.changed = make(chan struct{})
				l.mu.Unlock()
				return
			}
		}
	}()
	return l
}

func (l *Lines) add(b []byte) []Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := time.Since(l.start)
	var out []Line
	for _, c := range b {
		switch c {
		case '\n':
			ln := Line{at, string(l.partial)}
			l.lines = append(l.lines, ln)
			out = append(out, ln)
			l.partial = l.partial[:0]
		case '\r':
		default:
			l.partial = append(l.partial, c)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return out
}

// Len is the number of complete lines so far: a mark to search from.
func (l *Lines) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// Since returns the complete lines from mark on.
func (l *Lines) Since(mark int) []Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	if mark > len(l.lines) {
		return nil
	}
	return append([]Line(nil), l.lines[mark:]...)
}

// Write types on the console.
func (l *Lines) Write(s string) error {
	_ = l.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := l.conn.Write([]byte(s))
	return err
}

// panicRE ends every wait at once: after a kernel panic nothing more comes.
var panicRE = regexp.MustCompile(`Kernel panic - not syncing|Attempted to kill init`)

// ErrPanic is returned by Wait when the kernel panicked.
var ErrPanic = errors.New("kernel panic (see the serial log)")

// Wait returns the index and the first line from mark on that matches re. It
// gives up after timeout, when the console closes (qemu exited), or on a
// kernel panic.
func (l *Lines) Wait(mark int, re *regexp.Regexp, timeout time.Duration) (int, Line, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for i := mark; i < len(l.lines); i++ {
			if re.MatchString(l.lines[i].Text) {
				ln := l.lines[i]
				l.mu.Unlock()
				return i, ln, nil
			}
			if panicRE.MatchString(l.lines[i].Text) {
				l.mu.Unlock()
				return i, Line{}, ErrPanic
			}
		}
		mark = len(l.lines)
		closed, changed := l.closed, l.changed
		l.mu.Unlock()
		if closed {
			return -1, Line{}, fmt.Errorf("console closed (qemu exited) before %q", re)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return -1, Line{}, fmt.Errorf("no %q on the console within %s", re, timeout)
		}
	}
}

// Close stops reading.
func (l *Lines) Close() { l.conn.Close() }

// Shell runs commands in a shell on the far end of conn (busybox sh on hvc0
// in the console partition). Each command's output is framed by markers
// echoed before and after it, so the prompt, echoed input and a shell that
// respawns after a reboot cannot be mistaken for output.
type Shell struct {
	conn   net.Conn
	lines  chan string
	exited <-chan struct{}
	mu     sync.Mutex // one command at a time
	n      int
}

// NewShell starts reading conn. log receives everything the shell prints.
func NewShell(conn net.Conn, log io.WriteCloser, exited <-chan struct{}) *Shell {
	s := &Shell{conn: conn, lines: make(chan string, 4096), exited: exited}
	go func() {
		defer close(s.lines)
		defer log.Close()
		r := bufio.NewReaderSize(conn, 64<<10)
		for {
			line, err := r.ReadString('\n')
			if line != "" {
				line = strings.TrimRight(line, "\r\n")
				fmt.Fprintln(log, line)
				select {
				case s.lines <- line:
				default: // nobody reads: drop rather than stall the reader
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *Shell) send(text string) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := s.conn.Write([]byte(text))
	return err
}

// next returns the next line, or an error at the deadline or when qemu exits.
func (s *Shell) next(deadline <-chan time.Time) (string, error) {
	select {
	case line, ok := <-s.lines:
		if !ok {
			return "", errors.New("virtio console closed")
		}
		return line, nil
	case <-s.exited:
		return "", errors.New("qemu exited")
	case <-deadline:
		return "", errors.New("timed out")
	}
}

// Sync waits until a shell answers (after each boot: the console partition
// starts it), and quiets it: no echo, no prompt. It asks again every few
// seconds, since what is typed before the shell runs may be lost.
func (s *Shell) Sync(timeout time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.After(timeout)
	for {
		s.n++
		token := fmt.Sprintf("@@SYNC%d@@", s.n)
		if err := s.send("stty -echo 2>/dev/null; PS1=''; PS2=''; echo " + token + "\n"); err != nil {
			return err
		}
		again := time.After(3 * time.Second)
	read:
		for {
			select {
			case line, ok := <-s.lines:
				if !ok {
					return errors.New("virtio console closed")
				}
				if line == token {
					return nil
				}
			case <-again:
				break read
			case <-s.exited:
				return errors.New("qemu exited")
			case <-deadline:
				return fmt.Errorf("no shell on the virtio console within %s", timeout)
			}
		}
	}
}

// Run runs a command line in the shell, its stdin /dev/null and its stderr
// merged into its stdout, and returns that output and its exit status.
func (s *Shell) Run(cmd string, timeout time.Duration) (string, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	begin, end := fmt.Sprintf("@@B%d@@", s.n), fmt.Sprintf("@@E%d@@ ", s.n)
	if err := s.send(fmt.Sprintf("echo %s; ( %s ) </dev/null 2>&1; echo %s$?\n", begin, cmd, end)); err != nil {
		return "", -1, err
	}
	deadline := time.After(timeout)
	var out []string
	started := false
	for {
		line, err := s.next(deadline)
		if err != nil {
			return strings.Join(out, "\n"), -1, fmt.Errorf("%s: %w", cmd, err)
		}
		switch {
		case line == begin:
			started = true
		case started && strings.HasPrefix(line, end):
			rc, err := strconv.Atoi(strings.TrimPrefix(line, end))
			if err != nil {
				return strings.Join(out, "\n"), -1, fmt.Errorf("%s: bad end marker %q", cmd, line)
			}
			return strings.Join(out, "\n"), rc, nil
		case started:
			out = append(out, line)
		}
	}
}

// Send types a line without waiting for anything (for commands that end
// the machine and so never answer).
func (s *Shell) Send(cmd string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.send(cmd + "\n")
}

// Close stops reading.
func (s *Shell) Close() { s.conn.Close() }
