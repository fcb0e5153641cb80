package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Handler serves one request and returns its final response.
type Handler func(s *Session, req *Request) *Response

// Server accepts control connections.
type Server struct {
	path    string
	ln      *net.UnixListener
	handler Handler
	logf    func(string, ...any)
	wg      sync.WaitGroup
}

func (s *Server) String() string { return "control socket " + s.path }

// Listen creates the socket at path, mode 0600.
func Listen(path string, h Handler, logf func(string, ...any)) (*Server, error) {
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Server{path: path, ln: ln, handler: h, logf: logf}, nil
}

// Serve accepts until Close. Each connection is served in its own goroutine,
// which recovers from panics: a bad request must never take PID 1 down.
func (s *Server) Serve() {
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.logf("control: accept: %v", err)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			defer func() {
				if r := recover(); r != nil {
					s.logf("control: PANIC serving a request (recovered): %v", r)
				}
			}()
			s.serveConn(conn)
		}()
	}
}

// Close stops accepting; connections being served finish on their own.
func (s *Server) Close() error { return s.ln.Close() }

func (s *Server) serveConn(conn *net.UnixConn) {
	if err := checkPeer(conn); err != nil {
		// Take the request off the socket first: closing with it unread would
		// reset the connection, and the client would never see why.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = conn.Read(make([]byte, 1))
		_ = writeJSON(conn, Fail(err))
		return
	}
	buf := make([]byte, packetSize(conn))
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	files, ferr := parseRights(oob[:oobn])
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var resp *Response
	switch {
	case ferr != nil:
		resp = Fail(ferr)
	case flags&unix.MSG_TRUNC != 0:
		resp = Fail(fmt.Errorf("bad request: larger than %d bytes", MaxMessage))
	default:
		req, err := Decode(buf[:n])
		if err != nil {
			resp = Fail(err)
			break
		}
		ctx, cancel := context.WithCancel(context.Background())
		in := make(chan []byte, 64)
		sess := &Session{Ctx: ctx, Files: files, In: in, conn: conn}
		go readPackets(conn, in, cancel)
		resp = s.handler(sess, req)
		sess.finish(resp)
		cancel()
		return
	}
	_ = writeJSON(conn, resp)
}

// packetSize is a receive buffer for the request waiting on conn: one byte
// more than the request (a receive with MSG_PEEK|MSG_TRUNC gives a packet's
// length without consuming it), or MaxMessage as before when that cannot be
// told or the request is larger (it then reads as truncated). Requests are a
// few hundred bytes: a MaxMessage (1 MiB) buffer for each one made PID 1's
// heap, and its RSS, grow by megabytes while anything polled it.
func packetSize(conn *net.UnixConn) int {
	size := MaxMessage
	raw, err := conn.SyscallConn()
	if err != nil {
		return size
	}
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if err == unix.EAGAIN {
			return false // wait for the request
		}
		if err == nil && n < MaxMessage {
			size = n + 1
		}
		return true
	})
	return size
}

// readPackets delivers the client's packets until it hangs up, then cancels
// the session. It ends when the connection is closed, so it cannot leak.
func readPackets(conn *net.UnixConn, in chan<- []byte, cancel func()) {
	defer cancel()
	defer close(in)
	buf := make([]byte, maxPayload+64)
	for {
		n, err := conn.Read(buf)
		if err != nil || n == 0 {
			return
		}
		select {
		case in <- append([]byte(nil), buf[:n]...):
		default: // nobody reads input (not a stream): drop it
		}
	}
}

// checkPeer admits root only.
func checkPeer(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 {
		return fmt.Errorf("permission denied: uid %d is not root", cred.Uid)
	}
	return nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "client-fd"))
		}
	}
	if len(files) > 3 {
		return files, errors.New("bad request: more than 3 descriptors attached")
	}
	return files, nil
}
