package control

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	r, err := Decode([]byte(`{"verb":"exec","name":"web","args":["ls","-l"]}`))
	if err != nil || r.Verb != "exec" || r.Name != "web" || len(r.Args) != 2 {
		t.Fatalf("Decode: %+v %v", r, err)
	}
	for _, bad := range []string{``, `{`, `[]`, `{"verb":""}`, `{"verb":"stop","name":"../x"}`, `{"verb":"stop","name":"` + strings.Repeat("a", 10000) + `"}`, "\xff"} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%.40q) accepted", bad)
		}
	}
}

func TestRoundTripWithFiles(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	var gotFiles atomic.Int32
	srv, err := Listen(sock, func(sess *Session, req *Request) *Response {
		gotFiles.Store(int32(len(sess.Files)))
		if req.Verb == "boom" {
			panic("injected")
		}
		return &Response{OK: true, Message: req.Verb + " " + req.Name}
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	resp, err := Call(sock, &Request{Verb: "status", Name: "web"}, os.Stdin, os.Stdout, os.Stderr)
	if err != nil || !resp.OK || resp.Message != "status web" || gotFiles.Load() != 3 {
		t.Fatalf("call: %+v %v files=%d", resp, err, gotFiles.Load())
	}
	// A panicking handler costs that request only.
	if _, err := Call(sock, &Request{Verb: "boom"}); err == nil {
		t.Error("a panicking handler produced a response")
	}
	if resp, err := Call(sock, &Request{Verb: "list"}); err != nil || !resp.OK {
		t.Fatalf("server dead after a panic: %v", err)
	}
	if resp, _ := Call(sock, &Request{Verb: "stop", Name: "../etc"}); resp == nil || resp.OK {
		t.Errorf("a bad name was served: %+v", resp)
	}
}

// A stream: the server echoes input packets as output until the client hangs
// up, then its handler returns (no goroutine is left waiting).
func TestStream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	ended := make(chan struct{})
	srv, err := Listen(sock, func(sess *Session, req *Request) *Response {
		defer close(ended)
		if err := sess.Begin(); err != nil {
			return Fail(err)
		}
		for pkt := range sess.In {
			if pkt[0] == PacketInput {
				_ = sess.Send(PacketOutput, pkt[1:])
			}
			if pkt[0] == PacketResize {
				r, c, _ := ParseResize(pkt[1:])
				_ = sess.Send(PacketOutput, []byte(fmt.Sprintf("%dx%d", r, c)))
			}
		}
		return &Response{OK: true}
	}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	c, resp, err := Open(sock, &Request{Verb: "console", Name: "x"})
	if err != nil || c == nil || !resp.Stream {
		t.Fatalf("open: %v %+v", err, resp)
	}
	big := strings.Repeat("z", 100<<10) // larger than one packet
	_ = c.Input([]byte("hello"))
	_ = c.Resize(24, 80)
	_ = c.Input([]byte(big))
	var got strings.Builder
	for got.Len() < len("hello24x80")+len(big) {
		kind, data, _, err := c.Next()
		if err != nil || kind != PacketOutput {
			t.Fatalf("next: %c %v", kind, err)
		}
		got.Write(data)
	}
	if !strings.HasPrefix(got.String(), "hello24x80zzz") {
		t.Errorf("echo: %.20q", got.String())
	}
	c.Close()
	select {
	case <-ended:
	case <-time.After(2 * time.Second):
		t.Fatal("handler still running after the client hung up")
	}
}
