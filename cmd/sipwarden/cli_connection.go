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

common flags: --api URL, --api-key KEY, --data-dir DIR, --output text|json
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
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	conn, err := cl.CreateConnection(context.Background(), api.CreateConnectionRequest{Name: *name, Active: &active, AllowedCIDRs: splitList(*cidrs)})
	if err != nil {
		return c.fail(err)
	}
	c.showConnection(conn)
	return exitOK
}

func (c *cli) connectionList(args []string) int {
	fs := c.flags("connection list", "connection list [flags]")
	var p pageFlags
	p.register(fs)
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	conns, next, err := collect(&p, func(pr api.PageRequest) ([]api.Connection, string, error) {
		return cl.ListConnections(context.Background(), pr)
	})
	if err != nil {
		return c.fail(err)
	}
	if c.output == "json" {
		if conns == nil {
			conns = []api.Connection{}
		}
		c.printJSON(conns)
		return exitOK
	}
	t := c.table("ID", "NAME", "ACTIVE", "CREATED_AT")
	for _, cn := range conns {
		t.row(cn.ID, cn.Name, fmt.Sprint(cn.Active), formatTime(cn.CreatedAt))
	}
	t.flush()
	c.moreHint(next)
	return exitOK
}

func (c *cli) connectionGet(args []string) int {
	fs := c.flags("connection get", "connection get ID [flags]")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	conn, err := cl.GetConnection(context.Background(), pos[0])
	if err != nil {
		return c.fail(err)
	}
	c.showConnection(conn)
	return exitOK
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
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	conn, err := cl.UpdateConnection(context.Background(), pos[0], req)
	if err != nil {
		return c.fail(err)
	}
	c.showConnection(conn)
	return exitOK
}

func (c *cli) connectionDelete(args []string) int {
	fs := c.flags("connection delete", "connection delete ID [flags]")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	if err := cl.DeleteConnection(context.Background(), pos[0]); err != nil {
		return c.fail(err)
	}
	if c.output == "text" {
		fmt.Fprintf(c.stdout, "connection %s deleted\n", pos[0])
	}
	return exitOK
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
