package cli

import (
	"context"
	"io"
	"time"

	"github.com/sipwarden/sipwarden/api"
)

const registrationUsage = `usage: sipwarden registration <subcommand> [flags]

subcommands:
  list [--username U] [--all] [--limit N] [--after CURSOR]
                 live bindings: contact, source, transport, expiry
  delete ID      remove one binding from the location table

common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json
Run 'sipwarden registration <subcommand> -h' for its flags.
`

func runRegistration(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return subcommand{name: "registration", usage: registrationUsage, subs: map[string]func(*cli, []string) int{
		"list":   (*cli).registrationList,
		"delete": (*cli).registrationDelete,
	}}.run(args, stdin, stdout, stderr)
}

func (c *cli) registrationList(args []string) int {
	fs := c.flags("registration list", "registration list [flags]")
	var q api.RegistrationQuery
	fs.StringVar(&q.Username, "username", "", "only this `username`'s bindings")
	var p pageFlags
	p.register(fs)
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		regs, next, err := collect(&p, func(pr api.PageRequest) ([]api.Registration, string, error) {
			q.Page = pr
			return cl.ListRegistrations(ctx, q)
		})
		if err == nil {
			printList(c, regs, next, []string{"ID", "USERNAME", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES_IN", "USER_AGENT"},
				func(r api.Registration) []string {
					return []string{r.ID, r.Username, r.Contact, r.Source, r.Transport,
						(time.Duration(r.ExpiresIn) * time.Second).String(), r.UserAgent}
				})
		}
		return err
	})
}

func (c *cli) registrationDelete(args []string) int {
	return c.byID("registration delete", args, func(ctx context.Context, cl *api.Client, id string) error {
		return c.deleted(cl.DeleteRegistration(ctx, id), "registration %s deleted\n", id)
	})
}
