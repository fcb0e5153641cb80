package pid1

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Log is PID 1's own log: one line per message, to the console (stderr, which
// the kernel opens on /dev/console for init), to the kernel log when running
// as the machine's PID 1, and to a file once one is attached. A failing sink
// is skipped, never fatal.
type Log struct {
	mu    sync.Mutex
	sinks []io.Writer
	kmsg  io.Writer
	start time.Time
}

// NewLog logs to stderr.
func NewLog() *Log {
	return &Log{sinks: []io.Writer{os.Stderr}, start: time.Now()}
}

// UseKmsg also writes to /dev/kmsg (machine PID 1 only), where dmesg and a
// serial console see it even before any file system is writable.
func (l *Log) UseKmsg() {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		l.Printf("kernel log unavailable: %v", err)
		return
	}
	l.mu.Lock()
	l.kmsg = f
	l.mu.Unlock()
}

// AddFile appends every later line to the file at path.
func (l *Log) AddFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_SYNC, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.sinks = append(l.sinks, f)
	l.mu.Unlock()
	return nil
}

// CloseFiles closes the files AddFile attached; the console and the kernel
// log stay. A machine's shutdown calls it before remounting / read-only,
// which a file still open for writing makes fail with EBUSY.
func (l *Log) CloseFiles() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.sinks[1:] {
		if c, ok := w.(io.Closer); ok {
			_ = c.Close()
		}
	}
	l.sinks = l.sinks[:1]
}

// Printf logs one line, prefixed with the seconds since metainit started.
func (l *Log) Printf(format string, args ...any) {
	l.print(0, fmt.Sprintf(format, args...))
}

// print writes msg to the sinks from the first on (0 includes the console).
func (l *Log) print(first int, msg string) {
	msg = strings.TrimRight(msg, "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	line := fmt.Sprintf("[%9.3f] metainit: %s\n", time.Since(l.start).Seconds(), msg)
	for _, w := range l.sinks[first:] {
		_, _ = io.WriteString(w, line)
	}
	if l.kmsg != nil {
		// Priority 6 (info); the kernel adds its own timestamp.
		_, _ = io.WriteString(l.kmsg, "<6>metainit: "+msg+"\n")
	}
}

// Status prints a systemd-style status line on the console ("[  OK  ] …" or
// "[FAILED] …") and logs it.
func (l *Log) Status(ok bool, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	tag := "[  OK  ]"
	if !ok {
		tag = "[FAILED]"
	}
	l.mu.Lock()
	_, _ = io.WriteString(l.sinks[0], tag+" "+msg+"\n")
	l.mu.Unlock()
	l.print(1, tag+" "+msg) // the console has it already
}
