// Package keyfile reads and writes the secrets sipwarden keeps in its data
// directory (the nonce key, the JWT signing key, the admin API key, TLS
// keys): written atomically with a mode of the caller's choice, so that a
// crash never leaves half a key and no reader sees one.
package keyfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// WriteAtomic writes data to a temporary file in path's directory (created
// with mode 0700 when missing), syncs it and renames it into place.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// LoadOrCreateHex reads a hex secret of at least 16 bytes from path, or
// creates one of n random bytes (mode 0600) when the file does not exist.
func LoadOrCreateHex(path string, n int) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) < 16 {
			return nil, false, fmt.Errorf("%s: want at least 32 hex digits", path)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	k := make([]byte, n)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	if err := WriteAtomic(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, false, err
	}
	return k, true, nil
}
