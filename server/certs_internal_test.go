package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/config"
)

// TestCertificateRenewedWithoutRestart: the TLS listener's configuration
// serves a renewed certificate once its files are replaced, and keeps the
// old one while the new pair does not load (a key not yet copied).
func TestCertificateRenewedWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	cfg := config.Config{DataDir: dir}
	cfg.SIP.Domain = "sip.example.test"
	cfg.SIP.TLS.CertFile, cfg.SIP.TLS.KeyFile = certFile, keyFile
	if err := selfSigned(certFile, keyFile, cfg); err != nil {
		t.Fatal(err)
	}
	first := serialOf(t, certFile)
	tc, err := loadTLS(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}()
		}
	}()
	served := func() *big.Int {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	if got := served(); got.Cmp(first) != 0 {
		t.Fatalf("serving serial %v, want %v", got, first)
	}

	// A renewal half done: the new certificate without its key.
	next := filepath.Join(dir, "next")
	if err := os.Mkdir(next, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := selfSigned(filepath.Join(next, "c.pem"), filepath.Join(next, "k.pem"), cfg); err != nil {
		t.Fatal(err)
	}
	second := serialOf(t, filepath.Join(next, "c.pem"))
	later := time.Now().Add(2 * time.Second)
	install := func(from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// Modification times can be coarse: make the change visible.
		if err := os.Chtimes(to, later, later); err != nil {
			t.Fatal(err)
		}
	}
	install(filepath.Join(next, "c.pem"), certFile)
	time.Sleep(certCheckEvery + 200*time.Millisecond)
	for i := 0; i < 3; i++ {
		if got := served(); got.Cmp(first) != 0 {
			t.Fatalf("with a mismatched pair serving %v, want the old %v", got, first)
		}
	}

	install(filepath.Join(next, "k.pem"), keyFile)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := served()
		if got.Cmp(second) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewed certificate not served within 10 s: still %v, want %v", got, second)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func serialOf(t *testing.T, certFile string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", certFile)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}
