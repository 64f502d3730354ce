package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/sipwarden/sipwarden/api"
)

const numberUsage = `usage: sipwarden number <subcommand> [flags]

subcommands:
  create NUMBER (--connection ID | --credential ID|USERNAME)
  list [--connection ID] [--credential ID|USERNAME] [--all] [--limit N] [--after CURSOR]
  get NUMBER
  update NUMBER [--connection ID] [--credential ID|USERNAME|""]
  delete NUMBER

NUMBER is E.164 with or without "+" (+15551234567, 15551234567) or a tel:
URI, or a pattern for a block ("+1555123*", quoted in the shell); calls to it go to the credential's registered devices, else to the
connection's pbx_uri. A credential is named by its ID (a UUID) or by its
username.

common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json
Run 'sipwarden number <subcommand> -h' for its flags.
`

func runNumber(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return subcommand{name: "number", usage: numberUsage, subs: map[string]func(*cli, []string) int{
		"create": (*cli).numberCreate,
		"list":   (*cli).numberList,
		"get":    (*cli).numberGet,
		"update": (*cli).numberUpdate,
		"delete": (*cli).numberDelete,
	}}.run(args, stdin, stdout, stderr)
}

func (c *cli) numberCreate(args []string) int {
	fs := c.flags("number create", "number create NUMBER [flags]")
	conn := fs.String("connection", "", "connection `ID` (default: the credential's)")
	cred := fs.String("credential", "", "credential (`ID or username`) whose devices calls ring")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	if *conn == "" && *cred == "" {
		return c.usageError("number create: --connection or --credential is required")
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		req := api.CreateNumberRequest{Number: pos[0], ConnectionID: *conn}
		if *cred != "" {
			var err error
			if req.CredentialID, err = resolveCredential(ctx, cl, *cred); err != nil {
				return err
			}
		}
		n, err := cl.CreateNumber(ctx, req)
		if err == nil {
			c.showNumber(n)
		}
		return err
	})
}

func (c *cli) numberList(args []string) int {
	fs := c.flags("number list", "number list [flags]")
	var q api.NumberQuery
	fs.StringVar(&q.ConnectionID, "connection", "", "only this connection `ID`")
	cred := fs.String("credential", "", "only this credential (`ID or username`)")
	var p pageFlags
	p.register(fs)
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		if *cred != "" {
			var err error
			if q.CredentialID, err = resolveExistingCredential(ctx, cl, *cred); err != nil {
				return err
			}
		}
		ns, next, err := collect(&p, func(pr api.PageRequest) ([]api.Number, string, error) {
			q.Page = pr
			return cl.ListNumbers(ctx, q)
		})
		if err == nil {
			printList(c, ns, next, []string{"NUMBER", "CONNECTION", "CREDENTIAL", "CREATED_AT"}, func(n api.Number) []string {
				return []string{n.Number, n.ConnectionID, n.CredentialID, formatTime(n.CreatedAt)}
			})
		}
		return err
	})
}

func (c *cli) numberGet(args []string) int {
	return c.byID("number get", args, func(ctx context.Context, cl *api.Client, number string) error {
		n, err := cl.GetNumber(ctx, number)
		if err == nil {
			c.showNumber(n)
		}
		return err
	})
}

func (c *cli) numberUpdate(args []string) int {
	fs := c.flags("number update", "number update NUMBER [flags]")
	conn := fs.String("connection", "", "move it to connection `ID`")
	cred := fs.String("credential", "", "assign it to the credential (`ID or username`); \"\" leaves it to its connection alone")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var req api.UpdateNumberRequest
	if set["connection"] {
		req.ConnectionID = conn
	}
	if set["credential"] {
		req.CredentialID = cred
	}
	if req == (api.UpdateNumberRequest{}) {
		return c.usageError("number update: nothing to change; see -h")
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		if *cred != "" {
			id, err := resolveCredential(ctx, cl, *cred)
			if err != nil {
				return err
			}
			req.CredentialID = &id
		}
		n, err := cl.UpdateNumber(ctx, pos[0], req)
		if err == nil {
			c.showNumber(n)
		}
		return err
	})
}

func (c *cli) numberDelete(args []string) int {
	return c.byID("number delete", args, func(ctx context.Context, cl *api.Client, number string) error {
		return c.deleted(cl.DeleteNumber(ctx, number), "number %s released\n", number)
	})
}

// resolveExistingCredential is resolveCredential for a list filter: an ID
// no credential has is an error naming it too, where resolveCredential
// leaves it to the command's own 404; a list has none, and answered an
// empty table.
func resolveExistingCredential(ctx context.Context, cl *api.Client, ref string) (string, error) {
	id, err := resolveCredential(ctx, cl, ref)
	if err != nil || id != ref {
		return id, err // a username, resolved to an existing credential
	}
	_, err = cl.GetCredential(ctx, id)
	if ae, ok := errors.AsType[*api.Error](err); ok && ae.Status == http.StatusNotFound {
		return "", fmt.Errorf("no credential with id or username %q", ref)
	}
	if err != nil {
		return "", fmt.Errorf("look up credential %q: %w", ref, err)
	}
	return id, nil
}

func (c *cli) showNumber(n api.Number) {
	if c.output == "json" {
		c.printJSON(n)
		return
	}
	t := c.table()
	t.row("number", n.Number)
	t.row("connection_id", n.ConnectionID)
	cred := n.CredentialID
	if cred == "" {
		cred = "none (the connection's pbx_uri)"
	}
	t.row("credential_id", cred)
	t.row("created_at", formatTime(n.CreatedAt))
	t.row("updated_at", formatTime(n.UpdatedAt))
	t.flush()
}
