// Package mountinfo reads /proc/self/mountinfo: the mounts of the caller's
// mount namespace, in mount order. PID 1 (unmounting, cgroup cleanup) and
// partitions (binding the machine's root) both need it.
package mountinfo

import (
	"fmt"
	"os"
	"strings"
)

// Mount is one line of mountinfo: where, and which file system type.
type Mount struct {
	Target, FSType string
}

// Read lists the mounts of this mount namespace, in mount order; nil when
// /proc is not there.
func Read() []Mount {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []Mount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		// Fields: id parent major:minor root target options [optional...] - fstype source superopts
		sep := 6
		for sep < len(f) && f[sep] != "-" {
			sep++
		}
		if sep+1 >= len(f) {
			continue
		}
		out = append(out, Mount{Target: unescapeOctal(f[4]), FSType: f[sep+1]})
	}
	return out
}

// unescapeOctal undoes the kernel's \040-style escaping in mountinfo.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
