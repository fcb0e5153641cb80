// Package control is metainit's control socket: a SOCK_SEQPACKET Unix socket,
// one JSON message per packet. A client sends one Request (with its stdin,
// stdout and stderr attached as SCM_RIGHTS for exec) and reads one Response.
// Only root may connect (SO_PEERCRED).
package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/metainit/metainit/partition"
)

// MaxMessage bounds a request or response packet.
const MaxMessage = 1 << 20

// Request is one call of a verb.
type Request struct {
	Verb string   `json:"verb"`
	Name string   `json:"name,omitempty"` // the partition, for verbs that take one
	Args []string `json:"args,omitempty"` // exec: the command
	Env  []string `json:"env,omitempty"`  // exec: extra environment
	Cwd  string   `json:"cwd,omitempty"`  // exec: working directory inside
	Tty  bool     `json:"tty,omitempty"`  // exec: allocate a pty and stream it
	// Rows and Cols: the client's terminal size (console, exec -t).
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Logs: the last Lines lines (0: all kept), Since a time, Follow.
	Lines  int       `json:"lines,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	Follow bool      `json:"follow,omitempty"`
}

// Response answers a Request.
type Response struct {
	OK         bool               `json:"ok"`
	Error      string             `json:"error,omitempty"`
	Message    string             `json:"message,omitempty"`
	Partitions []partition.Status `json:"partitions,omitempty"`
	ExitCode   int                `json:"exit_code,omitempty"`
	Stream     bool               `json:"stream,omitempty"` // packets follow
	Info       *Info              `json:"info,omitempty"`
	Lines      []partition.Line   `json:"lines,omitempty"`
}

// Info describes PID 1 itself (metainit info): what a leak test watches.
type Info struct {
	Pid        int    `json:"pid"`
	Version    string `json:"version"`
	Goroutines int    `json:"goroutines"`
	FDs        int    `json:"fds"`
	RSSKiB     int    `json:"rss_kib"`
	Reaped     uint64 `json:"orphans_reaped"`
	Nested     bool   `json:"nested"`
	Uptime     string `json:"uptime"`
}

// Decode parses a request packet and checks its shape.
func Decode(b []byte) (*Request, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bad request: %w", err)
	}
	if r.Verb == "" {
		return nil, errors.New("bad request: no verb")
	}
	if r.Name != "" {
		if err := partition.ValidName(r.Name); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// Fail makes an error response.
func Fail(err error) *Response { return &Response{Error: err.Error()} }
