package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/keyfile"
)

// loadTLS returns the TLS listener's configuration: the configured
// certificate, or a self-signed one kept in the data dir (generated on
// first start), reloaded by the listeners when its files change (see
// certFiles). TLS 1.2 is the minimum.
func loadTLS(cfg config.Config, logger *slog.Logger) (*tls.Config, error) {
	certFile, keyFile := cfg.SIP.TLS.CertFile, cfg.SIP.TLS.KeyFile
	if certFile == "" {
		certFile = filepath.Join(cfg.DataDir, "tls-cert.pem")
		keyFile = filepath.Join(cfg.DataDir, "tls-key.pem")
		if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
			if err := selfSigned(certFile, keyFile, cfg); err != nil {
				return nil, fmt.Errorf("generate self-signed certificate: %w", err)
			}
			logger.Info("self-signed TLS certificate generated", "path", certFile)
		}
	}
	files, err := newCertFiles(certFile, keyFile, logger)
	if err != nil {
		return nil, err
	}
	// No Certificates: crypto/tls consults GetCertificate only when they
	// are empty or the client sent SNI (phones dialling an address send
	// none). The same configuration serves sipgo's outbound TLS, where the
	// certificate is the client certificate a peer may ask for.
	return &tls.Config{
		GetCertificate: files.get,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return files.get(nil)
		},
		MinVersion: tls.VersionTLS12,
	}, nil
}

// selfSigned writes an ECDSA P-256 certificate valid for ten years. Its
// names cover the domain, localhost and the listen address; an IP is also
// given as a DNS name because linphone matches only DNS-type names.
func selfSigned(certFile, keyFile string, cfg config.Config) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cfg.SIP.Domain, Organization: []string{"sipwarden self-signed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	names := map[string]bool{"localhost": true, cfg.SIP.Domain: true}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	for _, l := range []string{cfg.SIP.Listen.TLS, cfg.SIP.Listen.WSS} {
		if ap, err := netip.ParseAddrPort(l); err == nil && !ap.Addr().IsUnspecified() {
			ips = append(ips, net.IP(ap.Addr().AsSlice()))
		}
	}
	for _, ip := range ips {
		names[ip.String()] = true
	}
	for n := range names {
		if ip := net.ParseIP(n); ip != nil && !containsIP(ips, ip) {
			ips = append(ips, ip)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, n)
	}
	tmpl.IPAddresses = ips
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := keyfile.WriteAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return keyfile.WriteAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

// loadNonceKey returns the HMAC key for nonces: from the config or the
// environment, else from DataDir/nonce.key, created on first start.
func loadNonceKey(cfg config.Config, logger *slog.Logger) ([]byte, error) {
	if cfg.Auth.NonceKey != "" {
		k, err := hex.DecodeString(cfg.Auth.NonceKey)
		if err != nil {
			return nil, fmt.Errorf("config: auth.nonce_key: not hex")
		}
		return k, nil
	}
	path := filepath.Join(cfg.DataDir, "nonce.key")
	k, created, err := keyfile.LoadOrCreateHex(path, 32)
	if err != nil {
		return nil, fmt.Errorf("nonce key: %w", err)
	}
	if created {
		logger.Info("nonce key generated", "path", path)
	}
	return k, nil
}
