package cli

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sipwarden/sipwarden/api"
)

const credentialUsage = `usage: sipwarden credential <subcommand> [flags]

subcommands:
  create [--username U] [--password-stdin] [--connection ID] [--name N] [--tag T]
         [--expires-at RFC3339] [--algorithms SHA-256,MD5] [--disabled]
                 create a credential; without --username the server
                 generates one (gencred...), and without --password-stdin
                 a strong password, printed once
  list [--connection ID] [--tag T] [--username U] [--enabled true|false]
       [--all] [--limit N] [--after CURSOR]
  get ID|USERNAME
  update ID|USERNAME [--password-stdin | --generate-password] [--name N] [--tag T]
            [--expires-at RFC3339|none] [--algorithms LIST|default]
                 --generate-password sets a strong password and prints it once
  enable ID|USERNAME
  disable ID|USERNAME  (its registrations and calls are ended at once)
  delete ID|USERNAME   (its registrations and calls are ended at once)

A credential is named by its ID (a UUID) or by its username.

common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json
Run 'sipwarden credential <subcommand> -h' for its flags.
`

func runCredential(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return subcommand{name: "credential", usage: credentialUsage, subs: map[string]func(*cli, []string) int{
		"create":  (*cli).credentialCreate,
		"list":    (*cli).credentialList,
		"get":     (*cli).credentialGet,
		"update":  (*cli).credentialUpdate,
		"enable":  func(c *cli, args []string) int { return c.credentialSetEnabled(args, true) },
		"disable": func(c *cli, args []string) int { return c.credentialSetEnabled(args, false) },
		"delete":  (*cli).credentialDelete,
	}}.run(args, stdin, stdout, stderr)
}

// Generated passwords: 24 characters from an alphabet without look-alikes
// (0/O/o, 1/l/I), about 139 bits.
const (
	passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
	passwordLength   = 24
	maxStdinPassword = 4096
)

func generatePassword() string {
	out := make([]byte, 0, passwordLength)
	limit := 256 - 256%len(passwordAlphabet) // reject above it: no modulo bias
	buf := make([]byte, 64)
	for len(out) < passwordLength {
		_, _ = rand.Read(buf) // never fails (Go 1.24+)
		for _, b := range buf {
			if int(b) < limit && len(out) < passwordLength {
				out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
			}
		}
	}
	return string(out)
}

// readPassword reads a password from stdin, without its final line break.
func (c *cli) readPassword() (string, error) {
	b, err := io.ReadAll(io.LimitReader(c.stdin, maxStdinPassword+1))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	if len(b) > maxStdinPassword {
		return "", fmt.Errorf("password on stdin is longer than %d bytes", maxStdinPassword)
	}
	p := strings.TrimSuffix(string(b), "\n")
	p = strings.TrimSuffix(p, "\r")
	if p == "" {
		return "", fmt.Errorf("--password-stdin: stdin is empty")
	}
	return p, nil
}

func parseAlgorithms(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (c *cli) credentialCreate(args []string) int {
	fs := c.flags("credential create", "credential create [--username U] [flags]")
	username := fs.String("username", "", "SIP `username` (default: the server generates one)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from stdin (default: the server generates one, printed once)")
	conn := fs.String("connection", "", "connection `ID` (default \"default\")")
	name := fs.String("name", "", "display `name`")
	tag := fs.String("tag", "", "free-form `tag` to filter by")
	expires := fs.String("expires-at", "", "expiry as an RFC 3339 `time` (default: never)")
	algs := fs.String("algorithms", "", "digest algorithms offered to it, in order, e.g. SHA-256,MD5 (default: the server's `list`)")
	disabled := fs.Bool("disabled", false, "create it disabled")
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	req := api.CreateCredentialRequest{ConnectionID: *conn, Username: *username, Name: *name, Tag: *tag, Algorithms: parseAlgorithms(*algs)}
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			return c.usageError("--expires-at: want an RFC 3339 time such as 2030-01-02T15:04:05Z, not %q", *expires)
		}
		req.ExpiresAt = &t
	}
	if *disabled {
		f := false
		req.Enabled = &f
	}
	if *pwStdin {
		p, err := c.readPassword()
		if err != nil {
			return c.usageError("%v", err)
		}
		req.Password = p
	}
	// Without a password the server generates one and answers it, once:
	// the same rules (length, strength) as one given, one place.
	return c.call(func(ctx context.Context, cl *api.Client) error {
		cred, err := cl.CreateCredential(ctx, req)
		if err == nil {
			c.showCreated(cred, cred.Password, cred.Password != "")
		}
		return err
	})
}

// showCreated prints a new credential and, when it was generated (by the
// server, or by update --generate-password), its password (once: the
// server keeps only hashes).
func (c *cli) showCreated(cred api.Credential, password string, generated bool) {
	if c.output == "json" {
		cred.Password = ""
		if generated {
			cred.Password = password
			fmt.Fprintln(c.stderr, "sipwarden: the generated password is in the output; it is not stored and will not be shown again")
		}
		c.printJSON(cred)
		return
	}
	if !generated {
		c.printCredential(cred)
		return
	}
	c.printCredential(cred, "password", password)
	fmt.Fprintln(c.stdout, "\nSave this password now: the server keeps only hashes of it, and it will not be shown again.")
}

func (c *cli) credentialList(args []string) int {
	fs := c.flags("credential list", "credential list [flags]")
	q := api.CredentialQuery{}
	fs.StringVar(&q.ConnectionID, "connection", "", "only this connection `ID`")
	fs.StringVar(&q.Tag, "tag", "", "only this `tag`")
	fs.StringVar(&q.Username, "username", "", "only this `username`")
	enabled := fs.String("enabled", "", "only enabled (true) or disabled (false) ones")
	var p pageFlags
	p.register(fs)
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	switch *enabled {
	case "":
	case "true", "false":
		b := *enabled == "true"
		q.Enabled = &b
	default:
		return c.usageError("--enabled must be true or false, not %q", *enabled)
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		creds, next, err := collect(&p, func(pr api.PageRequest) ([]api.Credential, string, error) {
			q.Page = pr
			return cl.ListCredentials(ctx, q)
		})
		if err == nil {
			printList(c, creds, next, []string{"ID", "USERNAME", "CONNECTION", "STATE", "EXPIRES_AT", "ALGORITHMS", "NAME", "TAG"},
				func(cr api.Credential) []string {
					return []string{cr.ID, cr.Username, cr.ConnectionID, cr.State, expiresText(cr.ExpiresAt),
						algorithmsText(cr.Algorithms), cr.Name, cr.Tag}
				})
		}
		return err
	})
}

func (c *cli) credentialGet(args []string) int {
	return c.byCredential("credential get", args, func(ctx context.Context, cl *api.Client, id string) error {
		cred, err := cl.GetCredential(ctx, id)
		if err == nil {
			c.showCredential(cred)
		}
		return err
	})
}

func (c *cli) credentialUpdate(args []string) int {
	fs := c.flags("credential update", "credential update ID [flags]")
	pwStdin := fs.Bool("password-stdin", false, "read a new password from stdin")
	genPw := fs.Bool("generate-password", false, "set a new generated password, printed once")
	name := fs.String("name", "", "new display `name` (\"\" clears it)")
	tag := fs.String("tag", "", "new `tag` (\"\" clears it)")
	expires := fs.String("expires-at", "", "new expiry as an RFC 3339 `time`, or none for never")
	algs := fs.String("algorithms", "", "digest algorithms offered, e.g. SHA-256,MD5, or default for the server's `list`")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var req api.UpdateCredentialRequest
	if set["name"] {
		req.Name = name
	}
	if set["tag"] {
		req.Tag = tag
	}
	if set["expires-at"] {
		if *expires == "none" {
			req.ClearExpiresAt = true
		} else {
			t, err := time.Parse(time.RFC3339, *expires)
			if err != nil {
				return c.usageError("--expires-at: want an RFC 3339 time such as 2030-01-02T15:04:05Z, or none, not %q", *expires)
			}
			req.ExpiresAt = &t
		}
	}
	if set["algorithms"] {
		if *algs == "default" {
			req.ClearAlgorithms = true
		} else if req.Algorithms = parseAlgorithms(*algs); req.Algorithms == nil {
			return c.usageError("--algorithms: want a list such as SHA-256,MD5, or default")
		}
	}
	if *pwStdin && *genPw {
		return c.usageError("credential update: --password-stdin and --generate-password exclude each other")
	}
	if *pwStdin {
		p, err := c.readPassword()
		if err != nil {
			return c.usageError("%v", err)
		}
		req.Password = &p
	}
	if *genPw {
		p := generatePassword()
		req.Password = &p
		return c.updateCredential(pos[0], req, p)
	}
	if !*pwStdin && !set["name"] && !set["tag"] && !set["expires-at"] && !set["algorithms"] {
		return c.usageError("credential update: nothing to change; see -h")
	}
	return c.updateCredential(pos[0], req)
}

func (c *cli) credentialSetEnabled(args []string, enabled bool) int {
	verb := "disable"
	if enabled {
		verb = "enable"
	}
	fs := c.flags("credential "+verb, "credential "+verb+" ID [flags]")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	code = c.updateCredential(pos[0], api.UpdateCredentialRequest{Enabled: &enabled})
	if code == exitOK && !enabled && c.output == "text" {
		// The server ends them on disabling as on delete: say so, as
		// delete does.
		fmt.Fprintf(c.stdout, "\ncredential %s disabled; its registrations and calls were ended\n", pos[0])
	}
	return code
}

// updateCredential applies req to the credential ref (ID or username) and
// shows the result; generated, when not empty, is a new password to show
// once.
func (c *cli) updateCredential(ref string, req api.UpdateCredentialRequest, generated ...string) int {
	return c.call(func(ctx context.Context, cl *api.Client) error {
		id, err := resolveCredential(ctx, cl, ref)
		if err != nil {
			return err
		}
		cred, err := cl.UpdateCredential(ctx, id, req)
		if err == nil {
			if len(generated) > 0 {
				c.showCreated(cred, generated[0], true)
			} else {
				c.showCredential(cred)
			}
		}
		return err
	})
}

func (c *cli) credentialDelete(args []string) int {
	return c.byCredential("credential delete", args, func(ctx context.Context, cl *api.Client, id string) error {
		return c.deleted(cl.DeleteCredential(ctx, id), "credential %s deleted; its registrations and calls were ended\n", id)
	})
}

// showCredential prints one credential in the chosen format.
func (c *cli) showCredential(cr api.Credential) {
	if c.output == "json" {
		c.printJSON(cr)
		return
	}
	c.printCredential(cr)
}

// printCredential prints one credential as aligned name/value rows, then
// the extra name/value pairs.
func (c *cli) printCredential(cr api.Credential, extra ...string) {
	t := c.table()
	t.row("id", cr.ID)
	t.row("username", cr.Username)
	t.row("connection", cr.ConnectionID)
	t.row("enabled", fmt.Sprint(cr.Enabled))
	t.row("state", cr.State)
	t.row("expires_at", expiresText(cr.ExpiresAt))
	t.row("algorithms", algorithmsText(cr.Algorithms))
	t.row("name", cr.Name)
	t.row("tag", cr.Tag)
	t.row("created_at", formatTime(cr.CreatedAt))
	t.row("updated_at", formatTime(cr.UpdatedAt))
	for i := 0; i+1 < len(extra); i += 2 {
		t.row(extra[i], extra[i+1])
	}
	t.flush()
}

func expiresText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return formatTime(*t)
}

func algorithmsText(as []string) string {
	if len(as) == 0 {
		return "default"
	}
	return strings.Join(as, ",")
}
