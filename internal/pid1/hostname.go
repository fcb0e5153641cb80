package pid1

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// SetHostname sets the hostname from /etc/hostname, as a machine's init does.
// A missing or empty file leaves the kernel's default.
func SetHostname() (string, error) {
	b, err := os.ReadFile("/etc/hostname")
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	if name == "" {
		return "", nil
	}
	return name, unix.Sethostname([]byte(name))
}
