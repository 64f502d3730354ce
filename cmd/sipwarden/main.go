// Command sipwarden is a SIP digest-auth registrar and stateful proxy with a
// management API. Run `sipwarden serve` to start the server; the other
// subcommands manage it through its API.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: sipwarden <command> [flags]

commands:
  serve          run the server (--config FILE; no file: embedded defaults)
  credential     manage SIP credentials: create|list|get|update|enable|disable|delete
  connection     manage connections: create|list|get|update|delete
  number         manage numbers (DIDs): create|list|get|update|delete
  registration   list or delete live registrations: list|delete
  token          mint or revoke JWTs for a credential: create|revoke
  version        print the version

Run 'sipwarden <command> -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(rest, stderr)
	case "credential", "credentials":
		return runCredential(rest, stdin, stdout, stderr)
	case "connection", "connections":
		return runConnection(rest, stdin, stdout, stderr)
	case "number", "numbers":
		return runNumber(rest, stdin, stdout, stderr)
	case "token", "tokens":
		return runToken(rest, stdin, stdout, stderr)
	case "registration", "registrations":
		return runRegistration(rest, stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "sipwarden", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sipwarden: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}
