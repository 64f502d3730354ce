package server

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
)

// TestTLSHandshakeBounded: a client trickling its ClientHello (each byte
// would renew an idle deadline) is closed once the handshake is not done
// within the bound, and a normal client still completes its handshake.
func TestTLSHandshakeBounded(t *testing.T) {
	const host = "127.0.0.1"
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := selfSigned(certFile, keyFile, config.Config{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ln := boundedTLS{tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}}), 300 * time.Millisecond}
	defer ln.Close()
	ended := make(chan error, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				_, err := c.Read(buf)
				ended <- err
			}()
		}
	}()

	// A normal client: handshake done, its byte read.
	good, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("a normal handshake failed: %v", err)
	}
	if _, err := good.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err != nil {
		t.Fatalf("the normal client's byte: %v", err)
	}
	good.Close()

	// A trickling client.
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hello := append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, make([]byte, 100)...)
	start := time.Now()
	for i := range hello {
		select {
		case <-ended:
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("closed after %v, want soon after 300ms", el)
			}
			return
		default:
		}
		_, _ = c.Write(hello[i : i+1])
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("a ClientHello trickled over %v: the handshake still waits", time.Since(start).Round(time.Millisecond))
}
