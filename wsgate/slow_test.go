package wsgate_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/sipwarden/sipwarden/wsgate"
)

// slowGate starts a gate with MessageTimeout d, connects a client that
// sends the upgrade request, and returns the client and a channel
// receiving the error that ends the server side's reads.
func slowGate(t *testing.T, d time.Duration) (net.Conn, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gate, err := wsgate.New(ln, wsgate.Config{MessageTimeout: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gate.Close() })
	ended := make(chan error, 1)
	go func() {
		c, err := gate.Accept()
		if err != nil {
			ended <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c) // the head, then the frames
		ended <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write([]byte(upgradeRequest(ln.Addr().String(), "Sec-WebSocket-Protocol: sip"))); err != nil {
		t.Fatal(err)
	}
	return c, ended
}

// TestMessageTrickledClosed: a client sending its message one byte at a
// time (each byte renewing the idle deadline below the gate) is closed
// once the message is not whole within MessageTimeout of its first byte,
// as a TCP connection is for a SIP message.
func TestMessageTrickledClosed(t *testing.T) {
	c, ended := slowGate(t, 300*time.Millisecond)
	payload := make([]byte, 100)
	h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Length: int64(len(payload)), Mask: ws.NewMask()}
	if err := ws.WriteHeader(c, h); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range payload {
		select {
		case err := <-ended:
			if !errors.Is(err, wsgate.ErrMessageTooSlow) {
				t.Fatalf("reads ended with %v, want ErrMessageTooSlow", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("closed after %v, want soon after 300ms", el)
			}
			return
		default:
		}
		_, _ = c.Write(payload[i : i+1])
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("a message trickled over %v still being read", time.Since(start).Round(time.Millisecond))
}

// TestMessageTimeoutIgnoresIdleGaps: whole messages with idle gaps
// between them, longer than MessageTimeout, are read: the clock runs from
// a frame's first byte, not from the previous one.
func TestMessageTimeoutIgnoresIdleGaps(t *testing.T) {
	c, ended := slowGate(t, 300*time.Millisecond)
	for range 3 {
		time.Sleep(500 * time.Millisecond)
		f := ws.MaskFrameInPlace(ws.NewFrame(ws.OpText, true, []byte("OPTIONS sip:x SIP/2.0\r\n\r\n")))
		if err := ws.WriteFrame(c, f); err != nil {
			t.Fatal(err)
		}
		f = ws.MaskFrameInPlace(ws.NewFrame(ws.OpPing, true, []byte("p")))
		if err := ws.WriteFrame(c, f); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("reads ended with %v", err)
	case <-time.After(200 * time.Millisecond):
	}
}
