package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sipwarden/sipwarden/api"
)

const connectionUsage = `usage: sipwarden connection <subcommand> [flags]

subcommands:
  create --name N [--inactive] [--allowed-cidrs CIDR,...]
  list [--all] [--limit N] [--after CURSOR]
  get ID
  update ID [--name N] [--active true|false] [--allowed-cidrs CIDR,...|""]
  delete ID      (refused while it has credentials, and for "default")

common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json
Run 'sipwarden connection <subcommand> -h' for its flags.
`

func runConnection(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return subcommand{name: "connection", usage: connectionUsage, subs: map[string]func(*cli, []string) int{
		"create": (*cli).connectionCreate,
		"list":   (*cli).connectionList,
		"get":    (*cli).connectionGet,
		"update": (*cli).connectionUpdate,
		"delete": (*cli).connectionDelete,
	}}.run(args, stdin, stdout, stderr)
}

func (c *cli) connectionCreate(args []string) int {
	fs := c.flags("connection create", "connection create --name N [flags]")
	name := fs.String("name", "", "connection `name` (required)")
	inactive := fs.Bool("inactive", false, "create it inactive")
	cidrs := fs.String("allowed-cidrs", "", "comma-separated `addresses or CIDRs` its credentials may authenticate from (default: any)")
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	if *name == "" {
		return c.usageError("connection create: --name is required")
	}
	active := !*inactive
	return c.call(func(ctx context.Context, cl *api.Client) error {
		conn, err := cl.CreateConnection(ctx, api.CreateConnectionRequest{Name: *name, Active: &active, AllowedCIDRs: splitList(*cidrs)})
		if err == nil {
			c.showConnection(conn)
		}
		return err
	})
}

func (c *cli) connectionList(args []string) int {
	fs := c.flags("connection list", "connection list [flags]")
	var p pageFlags
	p.register(fs)
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		conns, next, err := collect(&p, func(pr api.PageRequest) ([]api.Connection, string, error) {
			return cl.ListConnections(ctx, pr)
		})
		if err == nil {
			printList(c, conns, next, []string{"ID", "NAME", "ACTIVE", "CREATED_AT"}, func(cn api.Connection) []string {
				return []string{cn.ID, cn.Name, fmt.Sprint(cn.Active), formatTime(cn.CreatedAt)}
			})
		}
		return err
	})
}

func (c *cli) connectionGet(args []string) int {
	return c.byID("connection get", args, func(ctx context.Context, cl *api.Client, id string) error {
		conn, err := cl.GetConnection(ctx, id)
		if err == nil {
			c.showConnection(conn)
		}
		return err
	})
}

func (c *cli) connectionUpdate(args []string) int {
	fs := c.flags("connection update", "connection update ID [flags]")
	name := fs.String("name", "", "new `name`")
	active := fs.String("active", "", "true or false")
	cidrs := fs.String("allowed-cidrs", "", "comma-separated `addresses or CIDRs` replacing the allow-list; \"\" clears it (any address)")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var req api.UpdateConnectionRequest
	if set["name"] {
		req.Name = name
	}
	if set["active"] {
		switch *active {
		case "true", "false":
			b := *active == "true"
			req.Active = &b
		default:
			return c.usageError("--active must be true or false, not %q", *active)
		}
	}
	if set["allowed-cidrs"] {
		l := splitList(*cidrs)
		if l == nil {
			l = []string{}
		}
		req.AllowedCIDRs = &l
	}
	if req.Name == nil && req.Active == nil && req.AllowedCIDRs == nil {
		return c.usageError("connection update: nothing to change; see -h")
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		conn, err := cl.UpdateConnection(ctx, pos[0], req)
		if err == nil {
			c.showConnection(conn)
		}
		return err
	})
}

func (c *cli) connectionDelete(args []string) int {
	return c.byID("connection delete", args, func(ctx context.Context, cl *api.Client, id string) error {
		return c.deleted(cl.DeleteConnection(ctx, id), "connection %s deleted\n", id)
	})
}

func (c *cli) showConnection(cn api.Connection) {
	if c.output == "json" {
		c.printJSON(cn)
		return
	}
	t := c.table()
	t.row("id", cn.ID)
	t.row("name", cn.Name)
	t.row("active", fmt.Sprint(cn.Active))
	allowed := strings.Join(cn.AllowedCIDRs, ",")
	if allowed == "" {
		allowed = "any"
	}
	t.row("allowed_cidrs", allowed)
	t.row("created_at", formatTime(cn.CreatedAt))
	t.row("updated_at", formatTime(cn.UpdatedAt))
	t.flush()
}

// splitList splits a comma-separated flag value; "" is nil.
func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
