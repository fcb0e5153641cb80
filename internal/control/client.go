package control

import (
	"encoding/json"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Call sends req to the instance at socket, with files attached (exec), and
// returns its response.
func Call(socket string, req *Request, files ...*os.File) (*Response, error) {
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: socket, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("cannot reach metainit at %s: %w", socket, err)
	}
	defer conn.Close()
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix(b, oob, nil); err != nil {
		return nil, fmt.Errorf("send to %s: %w", socket, err)
	}
	buf := make([]byte, MaxMessage)
	n, err := conn.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("read from %s: %w", socket, err)
	}
	var resp Response
	if err := json.Unmarshal(buf[:n], &resp); err != nil {
		return nil, fmt.Errorf("bad response from %s: %w", socket, err)
	}
	return &resp, nil
}
