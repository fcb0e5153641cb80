package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/metainit/metainit/internal/control"
	"golang.org/x/sys/unix"
)

// detachKey is Ctrl-]; pressed detachPresses times within detachWindow it
// detaches from a console (lxc-console uses Ctrl-a q; nspawn Ctrl-] x3).
const (
	detachKey     = 0x1d
	detachPresses = 3
	detachWindow  = time.Second
)

// detector counts Ctrl-] presses; everything else passes through.
type detector struct{ presses []time.Time }

// feed returns the bytes to send and whether to detach.
func (d *detector) feed(b []byte, now time.Time) ([]byte, bool) {
	out := b[:0:0]
	for _, c := range b {
		if c != detachKey {
			d.presses = d.presses[:0]
			out = append(out, c)
			continue
		}
		d.presses = append(d.presses, now)
		if len(d.presses) > detachPresses {
			d.presses = d.presses[1:]
		}
		if len(d.presses) == detachPresses && now.Sub(d.presses[0]) <= detachWindow {
			return out, true
		}
		out = append(out, c)
	}
	return out, false
}

// attach streams the caller's terminal to a partition's console or to an
// exec -t command, and returns the final response. With escape set, Ctrl-]
// three times detaches.
func attach(c *clientFlags, req *control.Request, escape bool) (*control.Response, error) {
	req.Rows, req.Cols = termSize(os.Stdin)
	stream, resp, err := control.Open(c.socket, req)
	if err != nil {
		return nil, err
	}
	if stream == nil {
		return resp, nil // refused: resp says why
	}
	defer stream.Close()
	restore, err := rawTerminal(int(os.Stdin.Fd()))
	if err != nil {
		return nil, err
	}
	defer restore()
	if escape {
		fmt.Fprintf(os.Stderr, "Connected to the console of partition %s. Press Ctrl-] three times within 1s to detach.\r\n", req.Name)
	}

	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	defer signal.Stop(winch)
	detached := make(chan struct{})
	go func() {
		for range winch {
			if r, cl := termSize(os.Stdin); r > 0 {
				_ = stream.Resize(r, cl)
			}
		}
	}()
	go func() {
		var d detector
		buf := make([]byte, 4096)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 {
				out, stop := buf[:n], false
				if escape {
					out, stop = d.feed(buf[:n], time.Now())
				}
				if len(out) > 0 {
					_ = stream.Input(out)
				}
				if stop {
					close(detached)
					stream.Close()
					return
				}
			}
			if err != nil {
				return // stdin closed: keep showing output until the end
			}
		}
	}()
	for {
		kind, data, final, err := stream.Next()
		if err != nil {
			select {
			case <-detached:
				restore()
				fmt.Fprintf(os.Stderr, "\nDetached from partition %s.\n", req.Name)
				return &control.Response{OK: true}, nil
			default:
			}
			if errors.Is(err, io.EOF) {
				return nil, errors.New("connection to metainit closed")
			}
			return nil, err
		}
		switch kind {
		case control.PacketOutput:
			_, _ = os.Stdout.Write(data)
		case control.PacketEnd:
			return final, nil
		}
	}
}

func cmdConsole(args []string) int {
	c := newClientFlags("console")
	pos, err := c.parse(args)
	if err == nil && len(pos) != 1 {
		err = errors.New("console takes one partition name")
	}
	if err != nil {
		return usage("console", err)
	}
	if !isTerminal(os.Stdin) {
		fmt.Fprintln(os.Stderr, "metainit console: standard input is not a terminal")
		return exitUsage
	}
	resp, err := attach(c, &control.Request{Verb: "console", Name: pos[0]}, true)
	return report("console", resp, err)
}

// report prints a failed response or error and returns the exit code.
func report(verb string, resp *control.Response, err error) int {
	if err != nil {
		fmt.Fprintf(os.Stderr, "metainit %s: %v\n", verb, err)
		return exitFailure
	}
	if !resp.OK {
		fmt.Fprintf(os.Stderr, "metainit %s: %s\n", verb, resp.Error)
		return exitFailure
	}
	return exitOK
}
