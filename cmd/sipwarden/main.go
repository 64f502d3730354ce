// Command sipwarden is a SIP digest-auth registrar and stateful proxy with a
// management API. Run `sipwarden serve` to start the server; the other
// subcommands (package cli) manage it through its API.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sipwarden/sipwarden/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches: serve and version here, every other command to the CLI.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return runServe(args[1:], stderr)
		case "version", "--version", "-v":
			fmt.Fprintln(stdout, "sipwarden", version)
			return 0
		}
	}
	return cli.Run(args, stdin, stdout, stderr)
}
