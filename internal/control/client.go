package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Call sends req to the instance at socket, with files attached (exec), and
// returns its response. A streaming response is refused: use Open.
func Call(socket string, req *Request, files ...*os.File) (*Response, error) {
	c, resp, err := Open(socket, req, files...)
	if err != nil {
		return nil, err
	}
	if c != nil {
		c.Close()
		return nil, errors.New("unexpected stream")
	}
	return resp, nil
}

// Client is the client's end of a stream.
type Client struct {
	conn *net.UnixConn
	buf  []byte
}

// Open sends req and reads the answer. When the server streams, it returns a
// Client to read and write packets on; otherwise the final response.
func Open(socket string, req *Request, files ...*os.File) (*Client, *Response, error) {
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: socket, Net: "unixpacket"})
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach metainit at %s: %w", socket, err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		conn.Close()
		return nil, nil, err
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
		conn.Close()
		return nil, nil, fmt.Errorf("send to %s: %w", socket, err)
	}
	c := &Client{conn: conn, buf: make([]byte, MaxMessage)}
	n, err := conn.Read(c.buf)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("read from %s: %w", socket, err)
	}
	var resp Response
	if err := json.Unmarshal(c.buf[:n], &resp); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("bad response from %s: %w", socket, err)
	}
	if !resp.Stream {
		conn.Close()
		return nil, &resp, nil
	}
	return c, &resp, nil
}

// Next returns the next packet's kind and payload. For PacketEnd it also
// returns the decoded final response.
func (c *Client) Next() (kind byte, data []byte, final *Response, err error) {
	n, err := c.conn.Read(c.buf)
	if err != nil {
		return 0, nil, nil, err
	}
	if n == 0 {
		return 0, nil, nil, errors.New("empty packet")
	}
	kind, data = c.buf[0], c.buf[1:n]
	if kind == PacketEnd {
		var r Response
		if err := json.Unmarshal(data, &r); err != nil {
			return kind, nil, nil, err
		}
		return kind, nil, &r, nil
	}
	return kind, data, nil, nil
}

// Input sends typed bytes.
func (c *Client) Input(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), maxPayload)
		if _, err := c.conn.Write(append([]byte{PacketInput}, p[:n]...)); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Resize sends the terminal's size.
func (c *Client) Resize(rows, cols uint16) error {
	pkt := []byte{PacketResize, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(pkt[1:], rows)
	binary.BigEndian.PutUint16(pkt[3:], cols)
	_, err := c.conn.Write(pkt)
	return err
}

// Close hangs up.
func (c *Client) Close() error { return c.conn.Close() }

// ParseResize decodes a PacketResize payload.
func ParseResize(data []byte) (rows, cols uint16, ok bool) {
	if len(data) != 4 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:]), true
}
