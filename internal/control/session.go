package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sync"
)

// Packet kinds of a stream (console, exec -t, logs -f). After a request that
// streams, the server answers a Response with Stream set, then both sides
// send packets whose first byte is the kind; the server ends with PacketEnd
// carrying the final Response as JSON.
const (
	PacketOutput = 'o' // server → client: bytes for the client's terminal
	PacketInput  = 'i' // client → server: bytes typed
	PacketResize = 'w' // client → server: rows, cols as two big-endian uint16
	PacketEnd    = 'x' // server → client: final Response (JSON)
)

// Session is one client connection as a handler sees it.
type Session struct {
	// Ctx ends when the client hangs up.
	Ctx context.Context
	// Files are the descriptors the client attached (exec: stdin, stdout, stderr).
	Files []*os.File
	// In carries the client's packets after the request (streams only).
	In <-chan []byte

	conn      *net.UnixConn
	mu        sync.Mutex
	streaming bool
}

// Begin tells the client a stream follows.
func (s *Session) Begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streaming = true
	return writeJSON(s.conn, &Response{OK: true, Stream: true})
}

// Send writes one packet of kind to the client.
func (s *Session) Send(kind byte, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.streaming {
		return errors.New("send before Begin")
	}
	for len(data) > 0 || kind == PacketEnd {
		n := min(len(data), maxPayload)
		pkt := append([]byte{kind}, data[:n]...)
		if _, err := s.conn.Write(pkt); err != nil {
			return err
		}
		data = data[n:]
		if kind == PacketEnd {
			break
		}
	}
	return nil
}

// finish sends the final response: plain, or as the stream's last packet.
func (s *Session) finish(r *Response) {
	s.mu.Lock()
	streaming := s.streaming
	s.mu.Unlock()
	if !streaming {
		_ = writeJSON(s.conn, r)
		return
	}
	b, _ := json.Marshal(r)
	_ = s.Send(PacketEnd, b)
}

// maxPayload keeps stream packets well under the socket's packet limit.
const maxPayload = 32 << 10

func writeJSON(conn *net.UnixConn, r *Response) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = conn.Write(b)
	return err
}
