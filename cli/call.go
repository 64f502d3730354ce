package cli

import (
	"context"
	"io"

	"github.com/sipwarden/sipwarden/api"
)

const callUsage = `usage: sipwarden call <subcommand> [flags]

subcommands:
  list [--credential ID|USERNAME] [--all] [--limit N] [--after CURSOR]
                 live calls through the proxy
  hangup ID      end a call: the proxy sends BYE to both sides (the ID is
                 the list's: Call-ID;caller tag;callee tag; quote it)

common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json
Run 'sipwarden call <subcommand> -h' for its flags.
`

func runCall(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return subcommand{name: "call", usage: callUsage, subs: map[string]func(*cli, []string) int{
		"list":   (*cli).callList,
		"hangup": (*cli).callHangup,
	}}.run(args, stdin, stdout, stderr)
}

func (c *cli) callList(args []string) int {
	fs := c.flags("call list", "call list [flags]")
	cred := fs.String("credential", "", "only the calls of this credential (`ID or username`), as caller or callee")
	var p pageFlags
	p.register(fs)
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		id := ""
		if *cred != "" {
			var err error
			if id, err = resolveCredential(ctx, cl, *cred); err != nil {
				return err
			}
		}
		calls, next, err := collect(&p, func(pr api.PageRequest) ([]api.Call, string, error) {
			return cl.ListCalls(ctx, id, pr)
		})
		if err == nil {
			printList(c, calls, next, []string{"ID", "CALLER", "CALLEE", "STARTED_AT"},
				func(x api.Call) []string { return []string{x.ID, x.Caller, x.Callee, formatTime(x.StartedAt)} })
		}
		return err
	})
}

func (c *cli) callHangup(args []string) int {
	return c.byID("call hangup", args, func(ctx context.Context, cl *api.Client, id string) error {
		return c.deleted(cl.HangupCall(ctx, id), "call %s ended\n", id)
	})
}
