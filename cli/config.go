package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/sipwarden/sipwarden/config"
)

// runCheckConfig runs "sipwarden check-config FILE": load and validate
// the file as serve would, without starting anything. Exit 0 when it is
// good, 1 with one line per problem, each naming the YAML key.
func runCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// --config as serve takes it: an operator checks the command line that
	// starts the server by changing its verb.
	file := fs.String("config", "", "the configuration `FILE` (or give it as the argument)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: sipwarden check-config FILE   (or --config FILE)\n\nValidates the configuration FILE as 'sipwarden serve --config FILE' would (with the\nenvironment's SIPWARDEN_* secrets), without starting: each problem on a line, naming\nits key such as sip.listen.udp. Exit 0: good; 1: problems; 2: usage.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	path := *file
	switch {
	case path == "" && fs.NArg() == 1:
		path = fs.Arg(0)
	case path == "" || fs.NArg() != 0:
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(path)
	if err == nil {
		err = cfg.CheckFiles()
	}
	if err != nil {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintln(stderr, "sipwarden:", line)
		}
		return exitError
	}
	fmt.Fprintf(stdout, "%s: ok (realm %s, SIP udp %s tcp %s tls %s, HTTP %s, data in %s)\n", path,
		cfg.SIP.Realm, cfg.SIP.Listen.UDP, cfg.SIP.Listen.TCP, cfg.SIP.Listen.TLS, cfg.HTTP.Listen, cfg.DataDir)
	return exitOK
}
