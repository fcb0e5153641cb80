package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// capture runs f with stdout redirected and returns what it printed.
func capture(t *testing.T, f func() int) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	code := f()
	os.Stdout = old
	w.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, r)
	return b.String(), code
}

// help, the man page and completion come from one table: every verb is in all three.
func TestHelpManCompletionAgree(t *testing.T) {
	help, code := capture(t, func() int { return cmdHelp(nil) })
	if code != 0 {
		t.Fatalf("help exited %d", code)
	}
	man, _ := capture(t, func() int { return cmdMan(nil) })
	comp, _ := capture(t, func() int { return cmdCompletion([]string{"bash"}) })
	if !strings.HasPrefix(man, ".TH METAINIT 8") {
		t.Errorf("man page header: %.40q", man)
	}
	for _, v := range verbs {
		if !strings.Contains(help, "  "+v.name+" ") {
			t.Errorf("help lacks %s", v.name)
		}
		if !strings.Contains(man, ".B "+v.name+"\n") {
			t.Errorf("man page lacks %s", v.name)
		}
		if !strings.Contains(comp, " "+v.name) && !strings.Contains(comp, "\""+v.name) {
			t.Errorf("completion lacks %s", v.name)
		}
		one, code := capture(t, func() int { return cmdHelp([]string{v.name}) })
		if code != 0 || !strings.Contains(one, "usage: metainit "+v.name) {
			t.Errorf("help %s: %d %q", v.name, code, one)
		}
	}
	if _, code := capture(t, func() int { return cmdHelp([]string{"nope"}) }); code != exitUsage {
		t.Errorf("help of an unknown verb exited %d", code)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"list", "x"}, {"status"}, {"exec", "a"}, {"logs", "a", "-n", "-1"},
		{"top", "--interval", "1ms"}, {"spec", "extra"}, {"completion", "zsh"}, {"boot"}} {
		if _, code := capture(t, func() int { return run(args) }); code != exitUsage {
			t.Errorf("metainit %v exited %d, want %d", args, code, exitUsage)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.Local)
	for in, want := range map[string]time.Time{
		"10m":                  now.Add(-10 * time.Minute),
		"2026-11-25 11:30:00":  time.Date(2026, 11, 25, 11, 30, 0, 0, time.Local),
		"11:15":                time.Date(2026, 11, 25, 11, 15, 0, 0, time.Local),
		"2026-11-24T08:00:00Z": time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseSince("whenever", now); err == nil {
		t.Error("parseSince accepted nonsense")
	}
}

func TestDetachKey(t *testing.T) {
	var d detector
	t0 := time.Now()
	out, stop := d.feed([]byte{'a', 0x1d, 0x1d, 'b'}, t0)
	if stop || string(out) != "a\x1d\x1db" {
		t.Errorf("two presses and a key: %q %v", out, stop)
	}
	out, stop = d.feed([]byte{0x1d, 0x1d}, t0)
	if stop {
		t.Error("detached after two presses")
	}
	_, stop = d.feed([]byte{0x1d}, t0.Add(500*time.Millisecond))
	if !stop {
		t.Error("three presses within a second did not detach")
	}
	var slow detector
	slow.feed([]byte{0x1d}, t0)
	slow.feed([]byte{0x1d}, t0.Add(600*time.Millisecond))
	if _, stop := slow.feed([]byte{0x1d}, t0.Add(1200*time.Millisecond)); stop {
		t.Error("three presses over 1.2s detached")
	}
	_ = out
}
