package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/sipwarden/sipwarden/api"
)

const banUsage = `usage: sipwarden ban <subcommand> [flags]

subcommands:
  list [--all] [--limit N] [--after CURSOR]
                 sources banned by the SIP brute-force guard
  delete IP      lift the ban of the source holding IP (for IPv6, any
                 address of the banned /64)

common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json
Run 'sipwarden ban <subcommand> -h' for its flags.
`

func runBan(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return subcommand{name: "ban", usage: banUsage, subs: map[string]func(*cli, []string) int{
		"list":   (*cli).banList,
		"delete": (*cli).banDelete,
	}}.run(args, stdin, stdout, stderr)
}

func (c *cli) banList(args []string) int {
	fs := c.flags("ban list", "ban list [flags]")
	var p pageFlags
	p.register(fs)
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		bans, next, err := collect(&p, func(pr api.PageRequest) ([]api.Ban, string, error) {
			return cl.ListBans(ctx, pr)
		})
		if err == nil {
			printList(c, bans, next, []string{"IP", "PREFIX", "REASON", "FAILURES", "SINCE", "UNTIL"},
				func(b api.Ban) []string {
					return []string{b.IP, b.Prefix, b.Reason, fmt.Sprint(b.Failures), formatTime(b.Since), formatTime(b.Until)}
				})
		}
		return err
	})
}

func (c *cli) banDelete(args []string) int {
	return c.byID("ban delete", args, func(ctx context.Context, cl *api.Client, ip string) error {
		return c.deleted(cl.LiftBan(ctx, ip), "ban of %s lifted\n", ip)
	})
}
