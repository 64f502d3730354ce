package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/sipwarden/sipwarden/api"
)

const apikeyUsage = `usage: sipwarden apikey <subcommand> [flags]

subcommands:
  create --name N --scope admin|read
                 create an API key and print it once (the server keeps a
                 hash); a read key may only read, and not the API keys,
                 backups or exports
  list           the stored keys, without secrets
  delete ID      the key stops working at once

common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json
Run 'sipwarden apikey <subcommand> -h' for its flags.
`

func runAPIKey(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return subcommand{name: "apikey", usage: apikeyUsage, subs: map[string]func(*cli, []string) int{
		"create": (*cli).apikeyCreate,
		"list":   (*cli).apikeyList,
		"delete": (*cli).apikeyDelete,
	}}.run(args, stdin, stdout, stderr)
}

func (c *cli) apikeyCreate(args []string) int {
	fs := c.flags("apikey create", "apikey create --name N --scope admin|read [flags]")
	name := fs.String("name", "", "`name` telling the key apart (required)")
	scope := fs.String("scope", "", "admin or read (required)")
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	if *name == "" {
		return c.usageError("apikey create: --name is required")
	}
	if *scope != api.ScopeAdmin && *scope != api.ScopeRead {
		return c.usageError("apikey create: --scope must be admin or read, not %q", *scope)
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		k, err := cl.CreateAPIKey(ctx, api.CreateAPIKeyRequest{Name: *name, Scope: *scope})
		switch {
		case err != nil:
		case c.output == "json":
			c.printJSON(k)
			fmt.Fprintln(c.stderr, "sipwarden: the key is in the output; it is not stored and will not be shown again")
		default:
			t := c.table()
			t.row("id", k.ID)
			t.row("name", k.Name)
			t.row("scope", k.Scope)
			t.row("created_at", formatTime(k.CreatedAt))
			t.row("key", k.Key)
			t.flush()
			fmt.Fprintln(c.stdout, "\nSave this key now: the server keeps only a hash of it, and it will not be shown again.")
		}
		return err
	})
}

func (c *cli) apikeyList(args []string) int {
	fs := c.flags("apikey list", "apikey list [flags]")
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		keys, err := cl.ListAPIKeys(ctx)
		if err == nil {
			printList(c, keys, "", []string{"ID", "NAME", "SCOPE", "CREATED_AT"},
				func(k api.APIKey) []string { return []string{k.ID, k.Name, k.Scope, formatTime(k.CreatedAt)} })
		}
		return err
	})
}

func (c *cli) apikeyDelete(args []string) int {
	return c.byID("apikey delete", args, func(ctx context.Context, cl *api.Client, id string) error {
		return c.deleted(cl.DeleteAPIKey(ctx, id), "api key %s deleted\n", id)
	})
}
