package partition

import (
	"bytes"
	"net"
	"os"
	"strings"
)

// notifyListener receives sd_notify(3) datagrams from a partition's init on
// the socket named by $NOTIFY_SOCKET, as systemd-nspawn does. READY=1 makes
// the partition ready; STATUS= is kept for display.
type notifyListener struct {
	conn *net.UnixConn
}

func listenNotify(path string) (*notifyListener, error) {
	_ = os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	return &notifyListener{conn: conn}, nil
}

// serve calls onReady once on READY=1 and onStatus for each STATUS=, until
// the listener is closed.
func (n *notifyListener) serve(onReady func(), onStatus func(string)) {
	buf := make([]byte, 4096)
	ready := false
	for {
		k, _, err := n.conn.ReadFromUnix(buf)
		if err != nil {
			return
		}
		for _, line := range bytes.Split(buf[:k], []byte{'\n'}) {
			s := string(line)
			switch {
			case s == "READY=1" && !ready:
				ready = true
				onReady()
			case strings.HasPrefix(s, "STATUS="):
				onStatus(strings.TrimPrefix(s, "STATUS="))
			}
		}
	}
}

func (n *notifyListener) Close() error { return n.conn.Close() }
