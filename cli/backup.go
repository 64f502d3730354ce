package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/store"
)

// transferClient is the API client for backup, export and import: no
// overall timeout (a big store takes a while), bounded by a context.
func (c *cli) transferClient() (*api.Client, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	return cl.WithHTTPClient(&http.Client{}), nil
}

const transferTimeout = time.Hour

func (c *cli) transfer(f func(ctx context.Context, cl *api.Client) error) int {
	cl, err := c.transferClient()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
		defer cancel()
		err = f(ctx, cl)
	}
	if err != nil {
		return c.fail(err)
	}
	return exitOK
}

// runBackup runs "sipwarden backup FILE": a hot copy of the live store,
// through the API, checked before it is kept.
func runBackup(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := c.flags("backup", "backup FILE [flags]\n\nCopies the running server's store (a consistent copy, taken while it serves) to FILE,\nchecks the copy, and refuses to overwrite FILE unless --force")
	force := fs.Bool("force", false, "overwrite FILE")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	path := pos[0]
	if _, err := os.Stat(path); err == nil && !*force {
		return c.usageError("backup: %s exists; pass --force to overwrite it", path)
	}
	return c.transfer(func(ctx context.Context, cl *api.Client) error {
		tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer os.Remove(tmp.Name()) // after the rename: a no-op
		n, err := cl.Backup(ctx, tmp)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := store.CheckFile(tmp.Name()); err != nil {
			return fmt.Errorf("backup: the copy does not check: %w", err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if c.output == "json" {
			c.printJSON(map[string]any{"file": path, "bytes": n})
		} else {
			fmt.Fprintf(c.stdout, "backup of %d bytes written to %s and checked\n", n, path)
		}
		return nil
	})
}

// runRestore runs "sipwarden restore FILE": offline, into the data dir.
func runRestore(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := c.flags("restore", "restore FILE [--data-dir DIR]\n\nPuts the backup FILE in place of DIR/"+store.FileName+", with the server stopped (refused while\na server holds the file); the file it replaces is kept beside it as "+store.FileName+".pre-restore-<time>")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	dir := firstNonEmpty(c.dataDir, os.Getenv(envDataDir), defaultDataDir)
	dst := filepath.Join(dir, store.FileName)
	prev, err := store.Restore(pos[0], dst, time.Now())
	if errors.Is(err, store.ErrLocked) {
		fmt.Fprintf(c.stderr, "sipwarden: %s is in use by a running server: stop it, restore, start it again\n", dst)
		return exitError
	}
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stdout, "%s restored from %s\n", dst, pos[0])
	if prev != "" {
		fmt.Fprintf(c.stdout, "the file it replaced is kept as %s\n", prev)
	}
	return exitOK
}

// runExport runs "sipwarden export [FILE]": every credential with its HA1s.
func runExport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := c.flags("export", "export [FILE] [--format jsonl|csv]\n\nWrites every credential with its HA1 values (secrets: keep the file private) to FILE\n(whole or not at all, mode 0600) or stdout (no FILE, or -): JSON lines that 'sipwarden import' reads, or CSV username,ha1,realm (MD5)")
	format := fs.String("format", "", "jsonl or csv (default: from FILE's extension, else jsonl)")
	pos, code, ok := c.parseUpTo(fs, args, 1)
	if !ok {
		return code
	}
	path := ""
	if len(pos) == 1 && pos[0] != "-" { // "-": stdout, as import reads stdin
		path = pos[0]
	}
	f, err := transferFormat(*format, path)
	if err != nil {
		return c.usageError("export: %v", err)
	}
	return c.transfer(func(ctx context.Context, cl *api.Client) error {
		if path == "" {
			n, err := exportTo(ctx, cl, c.stdout, f)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			fmt.Fprintf(c.stderr, "%d credentials exported\n", n)
			return nil
		}
		// Into a file beside FILE, renamed over it once whole: a failed
		// export (a credential CSV cannot hold, a broken stream) leaves
		// FILE, an earlier export perhaps, as it was.
		tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer os.Remove(tmp.Name()) // after the rename: a no-op
		n, err := exportTo(ctx, cl, tmp, f)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		fmt.Fprintf(c.stderr, "%d credentials exported\n", n)
		return nil
	})
}

func transferFormat(flagValue, path string) (string, error) {
	switch flagValue {
	case "jsonl", "csv":
		return flagValue, nil
	case "":
		if strings.EqualFold(filepath.Ext(path), ".csv") {
			return "csv", nil
		}
		return "jsonl", nil
	}
	return "", fmt.Errorf("--format must be jsonl or csv, not %q", flagValue)
}

// exportTo writes the export in format f and returns the records written.
func exportTo(ctx context.Context, cl *api.Client, w io.Writer, f string) (int, error) {
	pr, pw := io.Pipe()
	go func() {
		_, err := cl.Export(ctx, pw)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	bw := bufio.NewWriter(w)
	var cw *csv.Writer
	if f == "csv" {
		cw = csv.NewWriter(bw)
		_ = cw.Write([]string{"username", "ha1", "realm"})
	}
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		line := sc.Bytes()
		if cw == nil {
			bw.Write(line)
			bw.WriteByte('\n')
			n++
			continue
		}
		var r api.CredentialRecord
		if err := json.Unmarshal(line, &r); err != nil {
			return n, fmt.Errorf("record %d: %w", n+1, err)
		}
		ha1 := r.HA1["MD5"]
		if ha1 == "" {
			return n, fmt.Errorf("credential %q has no MD5 HA1: CSV carries MD5 only; use --format jsonl", r.Username)
		}
		if err := cw.Write([]string{r.Username, ha1, r.Realm}); err != nil {
			return n, err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	if cw != nil {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// importBatch is how many records go in one POST /v1/import: one
// transaction each, well under the 1 MiB body limit.
const defaultImportBatch = 2000

// runImport runs "sipwarden import FILE".
func runImport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	fs := c.flags("import", "import FILE [--format jsonl|csv] [flags]\n\nCreates credentials with their HA1 values from FILE ('-': stdin): the JSON lines of\n'sipwarden export', or CSV rows username,ha1[,realm] (a Kamailio subscriber table; an\noptional header row). A credential with only an MD5 HA1 is offered MD5 alone until its\npassword changes. Records go in batches, each created entirely or not at all")
	format := fs.String("format", "", "jsonl or csv (default: from FILE's extension, else jsonl)")
	conn := fs.String("connection", "", "connection `ID` of CSV rows (default \"default\")")
	tag := fs.String("tag", "", "`tag` given to CSV rows")
	alg := fs.String("ha1-algorithm", "MD5", "digest `algorithm` of the CSV ha1 column: MD5, SHA-256 or SHA-512-256")
	batch := fs.Int("batch", defaultImportBatch, "records per request (`n`, 1 to 10000)")
	pos, code, ok := c.parse(fs, args, 1)
	if !ok {
		return code
	}
	f, err := transferFormat(*format, pos[0])
	if err != nil {
		return c.usageError("import: %v", err)
	}
	if *batch < 1 || *batch > 10000 {
		return c.usageError("import: --batch must be 1 to 10000, not %d", *batch)
	}
	var in io.Reader = c.stdin
	if pos[0] != "-" {
		file, err := os.Open(pos[0])
		if err != nil {
			return c.fail(fmt.Errorf("import: %w", err))
		}
		defer file.Close()
		in = file
	}
	records, lines, err := readRecords(in, f, csvDefaults{connection: *conn, tag: *tag, algorithm: *alg})
	if err != nil {
		return c.fail(fmt.Errorf("import %s: %w", pos[0], err))
	}
	return c.transfer(func(ctx context.Context, cl *api.Client) error {
		done := 0
		for done < len(records) {
			end := min(done+*batch, len(records))
			n, err := cl.Import(ctx, records[done:end])
			if err != nil {
				fmt.Fprintf(c.stderr, "sipwarden: the batch of lines %d to %d of %s was refused; %d credentials imported before it\n",
					lines[done], lines[end-1], pos[0], done)
				return fileLines(err, lines[done:end])
			}
			done += n
			fmt.Fprintf(c.stderr, "%d of %d imported\n", done, len(records))
		}
		if c.output == "json" {
			c.printJSON(api.ImportResult{Created: done})
		} else {
			fmt.Fprintf(c.stdout, "%d credentials imported\n", done)
		}
		return nil
	})
}

// batchLine is how the server names a line of an import's body.
var batchLine = regexp.MustCompile(`^line ([0-9]+)`)

// fileLines rewrites the line numbers of an import batch's refusal, which
// count the batch's lines (a bad line 4,501 was "line 501" of the third
// batch), into the file's: lines[i] is the file line of the batch's
// line i+1.
func fileLines(err error, lines []int) error {
	var e *api.Error
	if !errors.As(err, &e) {
		return err
	}
	for i := range e.Errors {
		d := e.Errors[i].Detail
		m := batchLine.FindStringSubmatchIndex(d)
		if m == nil {
			continue
		}
		n, convErr := strconv.Atoi(d[m[2]:m[3]])
		if convErr != nil || n < 1 || n > len(lines) {
			continue
		}
		e.Errors[i].Detail = "line " + strconv.Itoa(lines[n-1]) + d[m[1]:]
	}
	return err
}

type csvDefaults struct{ connection, tag, algorithm string }

// readRecords reads import records and the line each came from.
func readRecords(r io.Reader, format string, d csvDefaults) ([]api.CredentialRecord, []int, error) {
	var (
		out   []api.CredentialRecord
		lines []int
	)
	// A UTF-8 byte order mark at the start (Excel's CSVs, some database
	// tools) is not part of the first field: "\ufeffusername" was not
	// read as the header row, and the batch was refused.
	br := bufio.NewReader(r)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	r = br
	if format == "jsonl" {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		line := 0
		for sc.Scan() {
			line++
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var rec api.CredentialRecord
			dec := json.NewDecoder(strings.NewReader(sc.Text()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rec); err != nil {
				return nil, nil, fmt.Errorf("line %d: %w", line, err)
			}
			out = append(out, rec)
			lines = append(lines, line)
		}
		return out, lines, sc.Err()
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	for first := true; ; first = false {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		line, _ := cr.FieldPos(0)
		if first && len(row) > 0 && strings.EqualFold(row[0], "username") {
			continue // a header row
		}
		if len(row) < 2 || len(row) > 3 {
			return nil, nil, fmt.Errorf("line %d: want username,ha1[,realm], got %d fields", line, len(row))
		}
		rec := api.CredentialRecord{Username: row[0], HA1: map[string]string{d.algorithm: row[1]}, ConnectionID: d.connection, Tag: d.tag}
		if len(row) == 3 {
			rec.Realm = row[2]
		}
		out = append(out, rec)
		lines = append(lines, line)
	}
	return out, lines, nil
}
