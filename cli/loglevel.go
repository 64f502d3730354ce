package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/sipwarden/sipwarden/api"
)

// runLogLevel runs "sipwarden log-level [LEVEL]": print the server's log
// level, or set it until the next SIGHUP or restart.
func runLogLevel(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := c.flags("log-level", "log-level [debug|info|warn|error] [flags]\n\nWithout a level, prints the server's; with one, sets it (until SIGHUP or a restart)")
	pos, code, ok := c.parseUpTo(fs, args, 1)
	if !ok {
		return code
	}
	return c.call(func(ctx context.Context, cl *api.Client) error {
		var (
			level string
			err   error
		)
		if len(pos) == 0 {
			level, err = cl.LogLevel(ctx)
		} else {
			level, err = cl.SetLogLevel(ctx, pos[0])
		}
		switch {
		case err != nil:
		case c.output == "json":
			c.printJSON(api.LogLevel{Level: level})
		default:
			fmt.Fprintln(c.stdout, level)
		}
		return err
	})
}
