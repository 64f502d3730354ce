package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sipwarden/sipwarden/config"
	"github.com/sipwarden/sipwarden/server"
)

const serveUsage = `usage: sipwarden serve [--config FILE]

Runs the server. Without --config it runs on its embedded defaults: SIP on
udp+tcp 127.0.0.1:5060 and tls 127.0.0.1:5061, the HTTP API, /metrics and
health probes on 127.0.0.1:8080, data in ./data. config/example.yaml
documents every key. SIGHUP re-reads log.level and log.sip_trace; SIGTERM
and SIGINT stop it.

flags:
`

// runServe parses serve's flags and runs the server until a signal.
func runServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML configuration `file` (default: embedded defaults; see config/example.yaml)")
	fs.Usage = func() {
		fmt.Fprint(stderr, serveUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err == nil {
		err = cfg.CheckFiles()
	}
	if err != nil {
		fmt.Fprintln(stderr, "sipwarden:", err)
		return 2
	}
	logger := server.NewLogger(cfg.Log, stderr)
	server.SetSIPGlobals(cfg, logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer server.ReloadLogOnHUP(ctx, *cfgPath, logger)()
	if h := cfg.Limits.GCHeadroomMB; h > 0 {
		go server.TuneGC(ctx, uint64(h)<<20, time.Second, logger) // process-wide: here, not in Start
	}
	if err := server.Run(ctx, cfg, logger, server.Options{Version: version}); err != nil {
		logger.Error("sipwarden stopped", "error", err)
		return 1
	}
	return 0
}
