package control

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
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
	srv, err := Listen(sock, func(ctx context.Context, req *Request, files []*os.File) *Response {
		gotFiles.Store(int32(len(files)))
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
