package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certCheckEvery is how often a handshake may look at the certificate
// files: at most one pair of stat calls per interval, whatever the rate.
const certCheckEvery = time.Second

// certFiles serves the TLS and WSS listeners' certificate from its files
// and picks up a renewed pair without a restart: an ACME client's deploy
// hook only has to copy the new files into place. A handshake at most
// certCheckEvery after the previous check compares the files' size and
// modification time with those loaded, and loads the pair again when they
// differ. A pair that does not load (the hook has written the certificate
// but not yet its key) keeps the previous certificate in service, and is
// tried again at the next check.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	cur     atomic.Pointer[tls.Certificate]
	checked atomic.Int64 // UnixNano of the last check

	mu     sync.Mutex // serialises reloads
	loaded [2]fileStamp
}

// fileStamp is what tells a rewritten file from the one loaded.
type fileStamp struct {
	size int64
	mod  time.Time
}

func newCertFiles(certFile, keyFile string, logger *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: logger}
	stamps, err := c.stamps()
	if err != nil {
		return nil, err
	}
	if err := c.load(stamps); err != nil {
		return nil, err
	}
	c.checked.Store(time.Now().UnixNano())
	return c, nil
}

// get is tls.Config.GetCertificate.
func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := time.Now().UnixNano()
	if last := c.checked.Load(); now-last >= int64(certCheckEvery) && c.checked.CompareAndSwap(last, now) {
		c.reloadIfChanged()
	}
	return c.cur.Load(), nil
}

func (c *certFiles) reloadIfChanged() {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamps, err := c.stamps()
	if err != nil {
		c.log.Warn("TLS certificate files unreadable; the loaded certificate stays in service", "cert_file", c.certFile, "error", err)
		return
	}
	if stamps == c.loaded {
		return
	}
	if err := c.load(stamps); err != nil {
		c.log.Warn("TLS certificate files changed but do not load; the previous certificate stays in service", "cert_file", c.certFile, "error", err)
		return
	}
	c.log.Info("TLS certificate reloaded", "cert_file", c.certFile, "not_after", c.cur.Load().Leaf.NotAfter)
}

// load loads the pair and records the stamps it was loaded with. It is
// called with c.mu held, or before c is shared.
func (c *certFiles) load(stamps [2]fileStamp) error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s: %w", c.certFile, err)
	}
	c.cur.Store(&cert)
	c.loaded = stamps
	return nil
}

func (c *certFiles) stamps() ([2]fileStamp, error) {
	var s [2]fileStamp
	for i, name := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return s, fmt.Errorf("stat TLS file: %w", err)
		}
		s[i] = fileStamp{size: fi.Size(), mod: fi.ModTime()}
	}
	return s, nil
}
