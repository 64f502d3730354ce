package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/config"
)

// The management subcommands (credential, connection, registration) talk
// to a running server through its API.
const (
	envAPI         = "SIPWARDEN_API"
	envDataDir     = "SIPWARDEN_DATA_DIR"
	defaultAPI     = "http://127.0.0.1:8080"
	defaultDataDir = "./data"
	adminKeyFile   = "admin.key"
)

// Exit codes of the management subcommands.
const (
	exitOK    = 0
	exitError = 1 // the API refused, or could not be reached
	exitUsage = 2
)

// cli holds what every management subcommand shares: its streams and the
// common flags.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	api            string
	apiKey         string
	dataDir        string
	output         string
}

// flags returns a FlagSet for "sipwarden <cmd> <sub>" with the common
// flags; synopsis is the usage line after "sipwarden".
func (c *cli) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.api, "api", "", "API base `URL` (env "+envAPI+"; default "+defaultAPI+")")
	fs.StringVar(&c.apiKey, "api-key", "", "API `key` (env "+config.EnvAPIKey+"; default: the data dir's "+adminKeyFile+")")
	fs.StringVar(&c.dataDir, "data-dir", "", "server data `dir` holding "+adminKeyFile+" (env "+envDataDir+"; default "+defaultDataDir+")")
	fs.StringVar(&c.output, "output", "table", "output `format`: table (also text) or json")
	fs.StringVar(&c.output, "o", "table", "short for --output")
	fs.Usage = func() {
		fmt.Fprintf(c.stderr, "usage: sipwarden %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseUpTo is parse for a command taking 0 to max positional arguments.
func (c *cli) parseUpTo(fs *flag.FlagSet, args []string, max int) (pos []string, code int, ok bool) {
	return c.parseRange(fs, args, 0, max)
}

// parse parses args, which may mix flags and positional arguments
// ("credential update ID --name x"), and checks the positional count and
// the common flags. code is the exit code when ok is false.
func (c *cli) parse(fs *flag.FlagSet, args []string, positional int) (pos []string, code int, ok bool) {
	return c.parseRange(fs, args, positional, positional)
}

// parseRange is parse for min to max positional arguments.
func (c *cli) parseRange(fs *flag.FlagSet, args []string, min, max int) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < min || len(pos) > max {
		switch {
		case max == 0:
			fmt.Fprintf(c.stderr, "sipwarden: unexpected argument %q\n", pos[0])
		case min == max:
			fmt.Fprintf(c.stderr, "sipwarden: want %d argument(s), got %d\n", max, len(pos))
		default:
			fmt.Fprintf(c.stderr, "sipwarden: want %d to %d arguments, got %d\n", min, max, len(pos))
		}
		fs.Usage()
		return nil, exitUsage, false
	}
	switch c.output {
	case "table", "text":
		c.output = "text"
	case "json":
	default:
		fmt.Fprintf(c.stderr, "sipwarden: --output (-o) must be table or json, not %q\n", c.output)
		return nil, exitUsage, false
	}
	return pos, exitOK, true
}

// usageError reports a bad flag value: exit code 2.
func (c *cli) usageError(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "sipwarden: "+format+"\n", args...)
	return exitUsage
}

// client returns an API client from the common flags, the environment and
// the data dir's admin key file, in that order.
func (c *cli) client() (*api.Client, error) {
	base := firstNonEmpty(c.api, os.Getenv(envAPI), defaultAPI)
	key := firstNonEmpty(c.apiKey, os.Getenv(config.EnvAPIKey))
	if key == "" {
		dir := firstNonEmpty(c.dataDir, os.Getenv(envDataDir), defaultDataDir)
		path := filepath.Join(dir, adminKeyFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no API key: pass --api-key, set %s, or point --data-dir at the server's data dir (%w)", config.EnvAPIKey, err)
		}
		key = strings.TrimSpace(string(b))
	}
	return api.NewClient(base, key, nil), nil
}

// call runs f with an API client; an error is printed (fail) and becomes
// exit code 1.
func (c *cli) call(f func(ctx context.Context, cl *api.Client) error) int {
	cl, err := c.client()
	if err == nil {
		err = f(context.Background(), cl)
	}
	if err != nil {
		return c.fail(err)
	}
	return exitOK
}

// resolveCredential turns a credential ID or username into its ID. A
// username may look like a UUID too, so a UUID is looked up both ways: the
// credential with that ID, else the one with that username; when one
// credential has it as ID and another as username, the argument is
// refused as ambiguous rather than silently taken as either.
func resolveCredential(ctx context.Context, cl *api.Client, ref string) (string, error) {
	creds, _, err := cl.ListCredentials(ctx, api.CredentialQuery{Username: ref, Page: api.PageRequest{Size: 1}})
	if err != nil {
		return "", fmt.Errorf("look up credential %q: %w", ref, err)
	}
	if _, err := uuid.Parse(ref); err != nil {
		if len(creds) == 0 {
			return "", fmt.Errorf("no credential with id or username %q", ref)
		}
		return creds[0].ID, nil
	}
	if len(creds) == 0 || creds[0].ID == ref {
		return ref, nil // an ID; an unknown one is the command's own 404
	}
	// ref is the username of creds[0]: is it another credential's ID?
	_, err = cl.GetCredential(ctx, ref)
	if ae, ok := errors.AsType[*api.Error](err); ok && ae.Status == http.StatusNotFound {
		return creds[0].ID, nil
	}
	if err != nil {
		return "", fmt.Errorf("look up credential %q: %w", ref, err)
	}
	return "", fmt.Errorf("%q is ambiguous: the id of one credential and the username of another (id %s); give that one's id instead", ref, creds[0].ID)
}

// byCredential is byID for a credential given by ID or username.
func (c *cli) byCredential(name string, args []string, f func(ctx context.Context, cl *api.Client, id string) error) int {
	return c.byID(name, args, func(ctx context.Context, cl *api.Client, ref string) error {
		id, err := resolveCredential(ctx, cl, ref)
		if err != nil {
			return err
		}
		return f(ctx, cl, id)
	})
}

// byID runs "sipwarden <name> ID": it parses the common flags and one
// positional argument, then calls f with it.
func (c *cli) byID(name string, args []string, f func(ctx context.Context, cl *api.Client, id string) error) int {
	fs := c.flags(name, name+" ID [flags]")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	return c.call(func(ctx context.Context, cl *api.Client) error { return f(ctx, cl, pos[0]) })
}

// deleted reports a deletion done (err nil) in text output.
func (c *cli) deleted(err error, format string, args ...any) error {
	if err == nil && c.output == "text" {
		fmt.Fprintf(c.stdout, format, args...)
	}
	return err
}

// printList prints a page of items (or all pages): a JSON array, or a
// table of header and one row per item, then how to get the next page.
func printList[T any](c *cli, items []T, next string, header []string, row func(T) []string) {
	if c.output == "json" {
		if items == nil {
			items = []T{}
		}
		c.printJSON(items)
		c.moreHint(next)
		return
	}
	t := c.table(header...)
	for _, it := range items {
		t.row(row(it)...)
	}
	t.flush()
	c.moreHint(next)
}

// fail prints err (each API error object on a line of its own) and
// returns the exit code 1.
func (c *cli) fail(err error) int {
	if e, ok := errors.AsType[*api.Error](err); ok {
		for _, o := range e.Errors {
			msg := o.Detail
			if msg == "" {
				msg = o.Title
			}
			fmt.Fprintf(c.stderr, "sipwarden: %s (HTTP %d, %s)\n", msg, e.Status, o.Code)
		}
		return exitError
	}
	fmt.Fprintln(c.stderr, "sipwarden:", err)
	if errors.Is(err, syscall.ECONNREFUSED) {
		fmt.Fprintf(c.stderr, "sipwarden: is the server running? Point --api (or %s) at its HTTP address\n", envAPI)
	}
	return exitError
}

// printJSON writes v as indented JSON.
func (c *cli) printJSON(v any) {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func (c *cli) table(header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, s := range cells {
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		io.WriteString(t.tw, cell(s))
	}
	io.WriteString(t.tw, "\n")
}

func (t *table) flush() { _ = t.tw.Flush() }

// cell makes a value safe for a terminal column: values a SIP device sent
// (contact, user agent) may hold tabs, newlines or escape sequences.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == '\t' }) {
		return strconv.Quote(s)
	}
	return s
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// subcommand dispatches "sipwarden <name> <sub> ..." to its handlers.
type subcommand struct {
	name  string
	usage string
	subs  map[string]func(c *cli, args []string) int
}

func (s subcommand) run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, s.usage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, s.usage)
		return exitOK
	}
	f, ok := s.subs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sipwarden %s: unknown subcommand %q\n\n%s", s.name, args[0], s.usage)
		return exitUsage
	}
	return f(&cli{stdin: stdin, stdout: stdout, stderr: stderr}, args[1:])
}

// pageFlags are the paging flags of the list subcommands.
type pageFlags struct {
	all   bool
	limit pageSize
	after string
}

func (p *pageFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&p.all, "all", false, "follow the cursors and list everything")
	fs.Var(&p.limit, "limit", "page `size`, 1 to 1000 (default 100; 1000 with --all)")
	fs.StringVar(&p.after, "after", "", "start after this `cursor` (a previous page's next cursor)")
}

// pageSize is --limit: 1 to 1000 when given (0: not given). 0 and -1
// were taken as "not given" and listed the default page.
type pageSize int

func (s *pageSize) String() string {
	if s == nil || *s == 0 {
		return ""
	}
	return strconv.Itoa(int(*s))
}

func (s *pageSize) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return errors.New("want a whole number from 1 to 1000")
	}
	*s = pageSize(n)
	return nil
}

func (p *pageFlags) request() api.PageRequest {
	size := int(p.limit)
	if size == 0 && p.all {
		size = 1000
	}
	return api.PageRequest{Size: size, After: p.after}
}

// collect fetches one page, or every page with --all, through fetch.
func collect[T any](p *pageFlags, fetch func(api.PageRequest) ([]T, string, error)) ([]T, string, error) {
	req := p.request()
	var all []T
	for {
		items, next, err := fetch(req)
		if err != nil {
			return nil, "", err
		}
		all = append(all, items...)
		if !p.all || next == "" {
			return all, next, nil
		}
		req.After = next
	}
}

// moreHint prints the next page's cursor on stderr (stdout stays one
// table or one JSON array): "next cursor: X" and how to use it.
func (c *cli) moreHint(next string) {
	if next != "" {
		fmt.Fprintf(c.stderr, "next cursor: %s\nmore results: add --after %s, or --all\n", next, next)
	}
}
