package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sipwarden/sipwarden/api"
)

const registrationUsage = `usage: sipwarden registration <subcommand> [flags]

subcommands:
  list [--username U] [--all] [--limit N] [--after CURSOR]
                 live bindings: contact, source, transport, expiry
  delete ID      remove one binding from the location table

common flags: --api URL, --api-key KEY, --data-dir DIR, --output text|json
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
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	regs, next, err := collect(&p, func(pr api.PageRequest) ([]api.Registration, string, error) {
		q.Page = pr
		return cl.ListRegistrations(context.Background(), q)
	})
	if err != nil {
		return c.fail(err)
	}
	if c.output == "json" {
		if regs == nil {
			regs = []api.Registration{}
		}
		c.printJSON(regs)
		return exitOK
	}
	t := c.table("ID", "USERNAME", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES_IN", "USER_AGENT")
	for _, r := range regs {
		t.row(r.ID, r.Username, r.Contact, r.Source, r.Transport,
			(time.Duration(r.ExpiresIn) * time.Second).String(), r.UserAgent)
	}
	t.flush()
	c.moreHint(next)
	return exitOK
}

func (c *cli) registrationDelete(args []string) int {
	fs := c.flags("registration delete", "registration delete ID [flags]")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	cl, err := c.client()
	if err != nil {
		return c.fail(err)
	}
	if err := cl.DeleteRegistration(context.Background(), pos[0]); err != nil {
		return c.fail(err)
	}
	if c.output == "text" {
		fmt.Fprintf(c.stdout, "registration %s deleted\n", pos[0])
	}
	return exitOK
}
