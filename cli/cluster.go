package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sipwarden/sipwarden/cluster"
	"github.com/sipwarden/sipwarden/store"
)

// runCluster runs "sipwarden cluster migrate REDIS_URL": offline, copies
// the data dir's records (connections, credentials, numbers, API keys)
// into a cluster's Redis, or back with --back.
func runCluster(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] != "migrate" {
		return c.usageError("cluster: want 'cluster migrate REDIS_URL [--back] [--data-dir DIR]'")
	}
	fs := c.flags("cluster migrate", "cluster migrate REDIS_URL [--back] [--data-dir DIR]\n\nCopies the records of DIR/"+store.FileName+" (connections, credentials, numbers, API keys)\ninto the cluster's Redis, replacing the records it held; with --back, copies Redis's records into\nDIR/"+store.FileName+" instead (the file it replaces is kept beside it). Run it with the servers stopped.\nBindings are not copied: devices register again.")
	back := fs.Bool("back", false, "copy from Redis into the data dir")
	pos, code, ok := c.parse(fs, args[1:], 1)
	if !ok {
		return code
	}
	dir := firstNonEmpty(c.dataDir, os.Getenv(envDataDir), defaultDataDir)
	path := filepath.Join(dir, store.FileName)
	if *back {
		if _, err := os.Stat(path); err == nil {
			prev := fmt.Sprintf("%s.pre-migrate-%s", path, time.Now().UTC().Format("20060102T150405Z"))
			if err := copyFile(path, prev); err != nil {
				return c.fail(fmt.Errorf("cluster migrate: keep %s: %w", path, err))
			}
			fmt.Fprintf(c.stdout, "the file it replaces is kept as %s\n", prev)
		}
	} else if _, err := os.Stat(path); err != nil {
		return c.fail(fmt.Errorf("cluster migrate: %w", err))
	}
	db, err := store.Open(path, store.Options{})
	if errors.Is(err, store.ErrLocked) {
		fmt.Fprintf(c.stderr, "sipwarden: %s is in use by a running server: stop it first\n", path)
		return exitError
	}
	if err != nil {
		return c.fail(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := cluster.Open(ctx, cluster.Config{URL: pos[0], Node: "migrate", Timeout: 5 * time.Second}, nil)
	if err != nil {
		return c.fail(err)
	}
	defer cl.Close()
	if *back {
		n, err := cl.Download(ctx, db)
		if err != nil {
			return c.fail(fmt.Errorf("cluster migrate --back: %w", err))
		}
		fmt.Fprintf(c.stdout, "%d records copied from redis into %s\n", n, path)
		return exitOK
	}
	n, err := cl.Upload(ctx, db)
	if err != nil {
		return c.fail(fmt.Errorf("cluster migrate: %w", err))
	}
	fmt.Fprintf(c.stdout, "%d records copied from %s into redis\n", n, path)
	return exitOK
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}
