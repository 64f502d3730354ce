// Package cli is sipwarden's command line for operators: the commands
// that manage a running server through its API (credential, connection,
// number, registration, call, ban, token, apikey, log-level), the ones
// that work on its files (backup, restore, export, import, cluster
// migrate, check-config) and shell completion. cmd/sipwarden's main
// dispatches to Run every command but serve and version.
package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// Usage is the program's usage text, printed by "sipwarden help".
const Usage = `usage: sipwarden <command> [flags]

commands:
  serve          run the server (--config FILE; no file: embedded defaults)
  check-config   validate a configuration file without starting: check-config FILE
  credential     manage SIP credentials: create|list|get|update|enable|disable|delete
  connection     manage connections: create|list|get|update|delete|rotate-webhook-secret
  number         manage numbers (DIDs): create|list|get|update|delete
  registration   list or delete live registrations: list|delete
  call           list or hang up live calls: list|hangup
  ban            list or lift bans of the SIP brute-force guard: list|delete
  token          mint or revoke JWTs for a credential: create|revoke
  apikey         manage API keys, scoped admin or read: create|list|delete
  log-level      print or set the server's log level: log-level [debug|info|warn|error]
  backup         copy the running server's store to a file: backup FILE
  restore        put a backup in place, server stopped: restore FILE --data-dir DIR
  cluster        copy a data dir's records into a cluster's Redis, servers stopped:
                 cluster migrate REDIS_URL [--back] [--data-dir DIR]
  export         write every credential with its HA1s: export [FILE] [--format jsonl|csv]
  import         create credentials with their HA1s: import FILE (JSON lines, or CSV
                 username,ha1[,realm] such as a Kamailio subscriber table)
  completion     print a shell completion script: completion bash|zsh
  version        print the version

The management commands talk to a running server through its API (--api URL,
--api-key KEY or the data dir's admin.key; -o table|json).
Run 'sipwarden <command> -h' for a command's flags.
`

// Run runs the command args[0] with the arguments after it and returns the
// process exit code: 0 done, 1 refused or failed, 2 bad usage.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return exitUsage
	}
	args = hoistCommon(args)
	cmd, rest := args[0], args[1:]
	switch cmd {
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
	case "call", "calls":
		return runCall(rest, stdin, stdout, stderr)
	case "ban", "bans":
		return runBan(rest, stdin, stdout, stderr)
	case "apikey", "apikeys", "api-key":
		return runAPIKey(rest, stdin, stdout, stderr)
	case "log-level":
		return runLogLevel(rest, stdin, stdout, stderr)
	case "check-config":
		return runCheckConfig(rest, stdout, stderr)
	case "backup":
		return runBackup(rest, stdin, stdout, stderr)
	case "cluster":
		return runCluster(rest, stdin, stdout, stderr)
	case "restore":
		return runRestore(rest, stdin, stdout, stderr)
	case "export":
		return runExport(rest, stdin, stdout, stderr)
	case "import":
		return runImport(rest, stdin, stdout, stderr)
	case "completion":
		return runCompletion(rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, Usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "sipwarden: unknown command %q\n\n%s", cmd, Usage)
		return exitUsage
	}
}

// hoisted reports whether name is one of the flags every management
// command takes with a value (commonFlags, as completion offers them).
func hoisted(name string) bool {
	return name != "h" && slices.ContainsFunc(strings.Fields(commonFlags), func(f string) bool {
		return strings.TrimLeft(f, "-") == name
	})
}

// hoistCommon moves the common flags given before the command
// ("sipwarden --api URL credential list", as with git or kubectl) to
// after the command and its subcommand (or first argument), where the
// command's flag set reads them; they used to make "unknown command
// --api". They go before any "--", after which everything is an argument.
func hoistCommon(args []string) []string {
	var lead []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name, _, inline := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !hoisted(name) {
			break
		}
		n := 1
		if !inline && len(args) > 1 {
			n = 2 // "--api URL"
		}
		lead = append(lead, args[:n]...)
		args = args[n:]
	}
	if len(lead) == 0 || len(args) == 0 {
		return append(lead, args...)
	}
	at := 1
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		at = 2
	}
	return slices.Concat(args[:at], lead, args[at:])
}
