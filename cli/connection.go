package cli

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
  create --name N [--kind credential|ip] [--inactive] [--allowed-cidrs CIDR,...] [policy flags]
  list [--all] [--limit N] [--after CURSOR]
  get ID
  update ID [--name N] [--active true|false] [--allowed-cidrs CIDR,...|""] [policy flags]
  rotate-webhook-secret ID   (a new webhook secret, shown once)
  delete ID      (refused while it has credentials or numbers, and for "default")

policy flags: --pbx-uri URI, --caller-id-policy username|connection_numbers|any,
  --sip-uri-calling disabled|internal|unrestricted, --max-calls N, --max-registrations N,
  --webhook-url URL, --webhook-failover-url URL, --webhook-timeout-secs N
  (an ip connection is trusted by its --allowed-cidrs, which it requires; a
  connection's first webhook URL makes its webhook secret, shown once)

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

		"rotate-webhook-secret": (*cli).connectionRotateSecret,
	}}.run(args, stdin, stdout, stderr)
}

func (c *cli) connectionCreate(args []string) int {
	fs := c.flags("connection create", "connection create --name N [flags]")
	name := fs.String("name", "", "connection `name` (required)")
	inactive := fs.Bool("inactive", false, "create it inactive")
	cidrs := fs.String("allowed-cidrs", "", "comma-separated `addresses or CIDRs` its credentials may authenticate from (default: any); an ip connection's own addresses")
	kind := fs.String("kind", "", "`credential` (default) or ip")
	var pol policyFlags
	pol.register(fs)
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	if *name == "" {
		return c.usageError("connection create: --name is required")
	}
	active := !*inactive
	req := api.CreateConnectionRequest{Name: *name, Active: &active, AllowedCIDRs: splitList(*cidrs), Kind: *kind,
		PBXURI: pol.pbxURI, CallerIDPolicy: pol.callerID, SIPURICallingPreference: pol.uriCalling,
		MaxCalls: pol.maxCalls, MaxRegistrations: pol.maxRegs,
		WebhookEventURL: pol.webhookURL, WebhookEventFailoverURL: pol.webhookFailoverURL, WebhookTimeoutSecs: pol.webhookTimeout}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		conn, err := cl.CreateConnection(ctx, req)
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
	var pol policyFlags
	pol.register(fs)
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
	pol.update(set, &req)
	if req == (api.UpdateConnectionRequest{}) {
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

func (c *cli) connectionRotateSecret(args []string) int {
	return c.byID("connection rotate-webhook-secret", args, func(ctx context.Context, cl *api.Client, id string) error {
		conn, err := cl.RotateWebhookSecret(ctx, id)
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
	t.row("kind", cn.Kind)
	if cn.PBXURI != "" {
		t.row("pbx_uri", cn.PBXURI)
	}
	t.row("caller_id_policy", cn.CallerIDPolicy)
	t.row("sip_uri_calling_preference", cn.SIPURICallingPreference)
	t.row("max_calls", limitText(cn.MaxCalls))
	t.row("max_registrations", limitText(cn.MaxRegistrations))
	if len(cn.OutboundRoutes) > 0 {
		t.row("outbound_routes", fmt.Sprintf("%d (see -o json)", len(cn.OutboundRoutes)))
	}
	if cn.WebhookEventURL != "" {
		t.row("webhook_event_url", cn.WebhookEventURL)
		if cn.WebhookEventFailoverURL != "" {
			t.row("webhook_event_failover_url", cn.WebhookEventFailoverURL)
		}
		t.row("webhook_timeout_secs", fmt.Sprint(cn.WebhookTimeoutSecs))
	}
	if cn.WebhookSecret != "" {
		t.row("webhook_secret", cn.WebhookSecret+"   (shown once: keep it now)")
	}
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

// policyFlags are the policy and webhook fields of a connection.
type policyFlags struct {
	pbxURI, callerID, uriCalling   string
	maxCalls, maxRegs              int
	webhookURL, webhookFailoverURL string
	webhookTimeout                 int
}

func (p *policyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.pbxURI, "pbx-uri", "", "`URI` of the PBX its numbers go to (sip:host:port;transport=tcp); \"\" clears it")
	fs.StringVar(&p.callerID, "caller-id-policy", "", "which From users its callers may present: `username`, connection_numbers or any")
	fs.StringVar(&p.uriCalling, "sip-uri-calling", "", "SIP URI calling preference: `disabled`, internal or unrestricted")
	fs.IntVar(&p.maxCalls, "max-calls", 0, "concurrent calls (ringing or answered) made by its callers or to its users and numbers, counted together (0: no limit)")
	fs.IntVar(&p.maxRegs, "max-registrations", 0, "registered contacts its credentials may hold (0: no limit)")
	fs.StringVar(&p.webhookURL, "webhook-url", "", "`URL` its events are posted to (https://...); \"\" clears it")
	fs.StringVar(&p.webhookFailoverURL, "webhook-failover-url", "", "`URL` tried when the webhook URL fails; \"\" clears it")
	fs.IntVar(&p.webhookTimeout, "webhook-timeout-secs", 0, "seconds a webhook delivery may take, 1 to 60 (0: 10)")
}

// update puts the flags that were given (set, by name) into req.
func (p *policyFlags) update(set map[string]bool, req *api.UpdateConnectionRequest) {
	for _, f := range []struct {
		name  string
		apply func()
	}{
		{"pbx-uri", func() { req.PBXURI = &p.pbxURI }},
		{"caller-id-policy", func() { req.CallerIDPolicy = &p.callerID }},
		{"sip-uri-calling", func() { req.SIPURICallingPreference = &p.uriCalling }},
		{"max-calls", func() { req.MaxCalls = &p.maxCalls }},
		{"max-registrations", func() { req.MaxRegistrations = &p.maxRegs }},
		{"webhook-url", func() { req.WebhookEventURL = &p.webhookURL }},
		{"webhook-failover-url", func() { req.WebhookEventFailoverURL = &p.webhookFailoverURL }},
		{"webhook-timeout-secs", func() { req.WebhookTimeoutSecs = &p.webhookTimeout }},
	} {
		if set[f.name] {
			f.apply()
		}
	}
}

func limitText(n int) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprint(n)
}
