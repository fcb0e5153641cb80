package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x`: "/tab\tx", `/trail\04`: `/trail\04`} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadHasRoot(t *testing.T) {
	for _, m := range Read() {
		if m.Target == "/" && m.FSType != "" {
			return
		}
	}
	t.Fatal("no / in /proc/self/mountinfo")
}
