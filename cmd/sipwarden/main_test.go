package main

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"testing"

	"sipwarden/config"
)

// TestMain sets sipgo's process globals once, as runServe does, before any
// test starts a server.
func TestMain(m *testing.M) {
	cfg, err := config.Default()
	if err != nil {
		panic(err)
	}
	flag.Parse()
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	setSIPGlobals(cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}
