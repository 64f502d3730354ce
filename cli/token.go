package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/sipwarden/sipwarden/api"
)

const tokenUsage = `usage: sipwarden token <subcommand> [flags]

subcommands:
  create --credential ID|USERNAME
                 mint a JWT for the credential (RFC 8898 Bearer, valid for
                 jwt.ttl, never past the credential's expiry) and print it
  revoke --credential ID|USERNAME
                 revoke every token minted for the credential until now

common flags: --api URL, --api-key KEY, --data-dir DIR, -o|--output table|json
Run 'sipwarden token <subcommand> -h' for its flags.
`

func runToken(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return subcommand{name: "token", usage: tokenUsage, subs: map[string]func(*cli, []string) int{
		"create": (*cli).tokenCreate,
		"revoke": (*cli).tokenRevoke,
	}}.run(args, stdin, stdout, stderr)
}

func (c *cli) tokenCreate(args []string) int {
	fs := c.flags("token create", "token create --credential ID [flags]")
	id := fs.String("credential", "", "`ID or username` of the credential the token stands for (required)")
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	if *id == "" {
		return c.usageError("token create: --credential is required")
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		cid, err := resolveCredential(ctx, cl, *id)
		if err != nil {
			return err
		}
		tok, err := cl.CreateToken(ctx, cid)
		switch {
		case err != nil:
		case c.output == "json":
			c.printJSON(tok)
		default:
			// The token alone on stdout, so that scripts can capture it.
			fmt.Fprintln(c.stdout, tok.Token)
			fmt.Fprintf(c.stderr, "token for %s, expires %s\n", tok.Username, formatTime(tok.ExpiresAt))
		}
		return err
	})
}

func (c *cli) tokenRevoke(args []string) int {
	fs := c.flags("token revoke", "token revoke --credential ID [flags]")
	id := fs.String("credential", "", "`ID or username` of the credential whose tokens are revoked (required)")
	if _, code, ok := c.parse(fs, args, 0); !ok {
		return code
	}
	if *id == "" {
		return c.usageError("token revoke: --credential is required")
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		cid, err := resolveCredential(ctx, cl, *id)
		if err != nil {
			return err
		}
		cred, err := cl.RevokeTokens(ctx, cid)
		switch {
		case err != nil:
		case c.output == "json":
			c.printJSON(cred)
		default:
			fmt.Fprintf(c.stdout, "tokens of %s minted before %s are revoked\n", cred.Username, formatTime(*cred.TokensNotBefore))
		}
		return err
	})
}
