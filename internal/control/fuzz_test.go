package control

import (
	"encoding/json"
	"testing"

	"github.com/metainit/metainit/partition"
)

// FuzzDecode feeds the control socket's decoder arbitrary packets. It must
// never panic; what it accepts has a verb and, if any, a valid partition
// name; and an accepted request, re-encoded, decodes to the same request.
// Seeds: testdata/fuzz/FuzzDecode. `make fuzz` runs it for 30s.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"verb":"list"}`))
	f.Add([]byte(`{"verb":"exec","name":"web","args":["ls","-l"],"env":["A=1"],"cwd":"/tmp","tty":true,"rows":24,"cols":80}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if r != nil {
				t.Errorf("error %v with a request %+v", err, r)
			}
			return
		}
		if r.Verb == "" {
			t.Errorf("accepted a request without a verb: %q", b)
		}
		if r.Name != "" && partition.ValidName(r.Name) != nil {
			t.Errorf("accepted partition name %q", r.Name)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Decode(again)
		if err != nil {
			t.Fatalf("accepted %q, refused it re-encoded as %s: %v", b, again, err)
		}
		// The same request: the same JSON (an empty list and none are one
		// request), the same instant (a decoded zone is a new *Location).
		if again2, err := json.Marshal(r2); err != nil || string(again2) != string(again) {
			t.Errorf("re-encoded %s, was %s (%v)", again2, again, err)
		}
		if !r.Since.Equal(r2.Since) {
			t.Errorf("since: %v, re-encoded %v", r.Since, r2.Since)
		}
	})
}
