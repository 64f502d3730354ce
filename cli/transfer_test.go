package cli

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/server/servertest"
	"github.com/sipwarden/sipwarden/store"
)

func md5HA1(user, password string) string {
	h := md5.Sum([]byte(user + ":" + servertest.Realm + ":" + password))
	return hex.EncodeToString(h[:])
}

// TestCLIImportExport: a Kamailio subscriber CSV comes in with its HA1s
// and those users register; an MD5-only credential is challenged with MD5
// alone; export writes JSON lines and CSV that import into another node.
func TestCLIImportExport(t *testing.T) {
	cfg := servertest.Config(t, t.TempDir())
	cfg.Auth.Algorithms = []string{"SHA-256", "MD5"}
	ts := servertest.Start(t, cfg)
	n := newNodeCLI(t, ts)
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "subscriber.csv")
	body := "username,ha1\n1001," + md5HA1("1001", "kamailio-pw-1001") + "\n1002," + strings.ToUpper(md5HA1("1002", "kamailio-pw-1002")) + ",sipwarden.test\n"
	if err := os.WriteFile(csvPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := n.ok("import", csvPath, "--tag", "kamailio").stdout; out != "2 credentials imported\n" {
		t.Fatalf("import: %q", out)
	}
	if st := ts.Register(t, "127.0.0.1", "1002", "kamailio-pw-1002", 600); st != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER of an imported user: %q", st)
	}
	if ch := servertest.RawExchange(t, "udp", ts.Addr("udp"), plainRegister("1001"), 2*time.Second); strings.Contains(ch, "SHA-256") || !strings.Contains(ch, "algorithm=MD5") {
		t.Errorf("challenge of an MD5-only credential offers more than MD5:\n%s", ch)
	}
	c := decodeJSON[api.Credential](t, n.ok("credential", "get", "1001", "-o", "json").stdout)
	if c.Tag != "kamailio" || !c.Enabled {
		t.Errorf("imported credential: %+v", c)
	}

	// Refused rows name the line and field; nothing of the batch is kept.
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("2001,"+md5HA1("2001", "x")+"\n2002,abc\n2003,"+md5HA1("2003", "x")+",other.realm\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := n.run("", "import", bad)
	if r.code != exitError || !strings.Contains(r.stderr, "line 2: ha1 MD5 must be 32 hex digits") || !strings.Contains(r.stderr, `line 3: realm "other.realm" is not this server's realm`) {
		t.Fatalf("import of bad rows: exit %d, stderr %s", r.code, r.stderr)
	}
	n.refused("no credential with id or username \"2001\"", "credential", "get", "2001")
	dup := filepath.Join(dir, "dup.csv")
	if err := os.WriteFile(dup, []byte("2001,"+md5HA1("2001", "x")+"\n1001,"+md5HA1("1001", "x")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.refused("line 2 (1001): username is already taken", "import", dup)
	// In batches (--batch 2), a refusal names the file's line, not the
	// batch's: the fourth line is the second of the second batch.
	batched := filepath.Join(dir, "batched.csv")
	if err := os.WriteFile(batched, []byte("3001,"+md5HA1("3001", "x")+"\n3002,"+md5HA1("3002", "x")+"\n3003,"+md5HA1("3003", "x")+"\n3004,abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.refused("line 4: ha1 MD5 must be 32 hex digits", "import", batched, "--batch", "2")
	// A CSV starting with a byte order mark (Excel) and a header row.
	bom := filepath.Join(dir, "bom.csv")
	if err := os.WriteFile(bom, []byte("\ufeffusername,ha1,realm\n4001,"+md5HA1("4001", "x")+",sipwarden.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := n.ok("import", bom).stdout; out != "1 credentials imported\n" {
		t.Errorf("import of a CSV with a byte order mark: %q", out)
	}
	n.ok("credential", "delete", "4001")
	n.ok("credential", "delete", "3001")
	n.ok("credential", "delete", "3002")

	// Export: JSON lines with HA1s, and CSV.
	n.ok("credential", "create", "--username", "alice")
	jsonl := filepath.Join(dir, "all.jsonl")
	n.ok("export", jsonl)
	raw, err := os.ReadFile(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 3 {
		t.Fatalf("export: %d lines, want 3:\n%s", len(lines), raw)
	}
	var rec api.CredentialRecord
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Username != "1001" || rec.HA1["MD5"] != md5HA1("1001", "kamailio-pw-1001") || len(rec.HA1) != 1 {
		t.Errorf("first export line %s: %+v %v", lines[0], rec, err)
	}
	if fi, err := os.Stat(jsonl); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export file mode: %v %v", fi, err)
	}
	csvOut := n.ok("export", "--format", "csv").stdout
	if !strings.HasPrefix(csvOut, "username,ha1,realm\n1001,"+md5HA1("1001", "kamailio-pw-1001")+",sipwarden.test\n") || strings.Count(csvOut, "\n") != 4 {
		t.Errorf("export csv:\n%s", csvOut)
	}
	// A read key may not export.
	ro := decodeJSON[api.APIKey](t, n.ok("apikey", "create", "--name", "ro", "--scope", "read", "-o", "json").stdout)
	n.key = ro.Key
	n.refused("HTTP 403", "export")
	n.refused("HTTP 403", "backup", filepath.Join(dir, "ro.db"))
	n.key = servertest.APIKey

	// The JSON lines import into another node, IDs and all.
	ts2 := servertest.Start(t, servertest.Config(t, t.TempDir()))
	n2 := newNodeCLI(t, ts2)
	if out := n2.ok("import", jsonl).stdout; out != "3 credentials imported\n" {
		t.Fatalf("import of the export: %q", out)
	}
	if c2 := decodeJSON[api.Credential](t, n2.ok("credential", "get", "1001", "-o", "json").stdout); c2.ID != c.ID {
		t.Errorf("imported ID %s, want %s", c2.ID, c.ID)
	}
	if st := ts2.Register(t, "127.0.0.1", "1001", "kamailio-pw-1001", 600); st != "SIP/2.0 200 OK" {
		t.Errorf("REGISTER on the second node: %q", st)
	}

	// "-" is stdout, as import's "-" is stdin (it wrote a file named -).
	if out := n.ok("export", "-").stdout; out != string(raw) {
		t.Errorf("export -: got\n%s\nwant\n%s", out, raw)
	}
	// A failed export leaves the file it would have replaced as it was: a
	// credential with a SHA-256 HA1 only has no CSV line.
	shaOnly := filepath.Join(dir, "sha.jsonl")
	if err := os.WriteFile(shaOnly, []byte(`{"username":"shaonly","ha1":{"SHA-256":"`+strings.Repeat("ab", 32)+`"}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.ok("import", shaOnly)
	if r := n.run("", "export", "--format", "csv", jsonl); r.code == exitOK {
		t.Errorf("CSV export of a SHA-256-only credential: exit 0, %q", r.stderr)
	}
	if after, err := os.ReadFile(jsonl); err != nil || string(after) != string(raw) {
		t.Errorf("the earlier export after a failed one: %v\n%s", err, after)
	}
	if left, _ := filepath.Glob(jsonl + ".tmp-*"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestCLIBackupRestore: a backup of a running node holds its credentials
// and bindings; restore refuses a data dir a server holds, and fills one
// a new node then serves.
func TestCLIBackupRestore(t *testing.T) {
	cfg := servertest.Config(t, t.TempDir())
	ts := servertest.Start(t, cfg)
	n := newNodeCLI(t, ts)
	created := decodeJSON[api.Credential](t, n.ok("credential", "create", "--username", "alice", "-o", "json").stdout) // with its generated Password
	if st := ts.Register(t, "127.0.0.1", "alice", created.Password, 3600); st != "SIP/2.0 200 OK" {
		t.Fatalf("REGISTER: %q", st)
	}
	dir := t.TempDir()
	backup := filepath.Join(dir, "b.db")
	if out := n.ok("backup", backup).stdout; !strings.Contains(out, "written to "+backup+" and checked") {
		t.Fatalf("backup: %q", out)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if r := n.run("", "backup", backup); r.code != exitUsage || !strings.Contains(r.stderr, "--force") {
		t.Errorf("backup over an existing file: exit %d %q", r.code, r.stderr)
	}
	n.ok("backup", backup, "--force")
	// The running node holds its data dir.
	r := n.run("", "restore", backup, "--data-dir", cfg.DataDir)
	if r.code != exitError || !strings.Contains(r.stderr, "in use by a running server") {
		t.Fatalf("restore into a live data dir: exit %d %q", r.code, r.stderr)
	}
	// Into a new data dir, served by a new node.
	cfg2 := servertest.Config(t, filepath.Join(t.TempDir(), "data"))
	if out := n.ok("restore", backup, "--data-dir", cfg2.DataDir).stdout; !strings.Contains(out, "restored from") {
		t.Fatalf("restore: %q", out)
	}
	if err := store.CheckFile(filepath.Join(cfg2.DataDir, store.FileName)); err != nil {
		t.Fatal(err)
	}
	ts2 := servertest.Start(t, cfg2)
	n2 := newNodeCLI(t, ts2)
	regs := decodeJSON[[]api.Registration](t, n2.ok("registration", "list", "-o", "json").stdout)
	if len(regs) != 1 || regs[0].Username != "alice" {
		t.Fatalf("registrations on the restored node: %+v", regs)
	}
	if st := ts2.Register(t, "127.0.0.1", "alice", created.Password, 600); st != "SIP/2.0 200 OK" {
		t.Errorf("REGISTER on the restored node: %q", st)
	}
	if r := n.run("", "restore", filepath.Join(dir, "none.db"), "--data-dir", t.TempDir()); r.code != exitError {
		t.Errorf("restore of a missing file: exit %d", r.code)
	}
}

// plainRegister is a REGISTER without credentials, for its challenge.
func plainRegister(user string) string {
	return "REGISTER sip:sipwarden.test SIP/2.0\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-p" + user + "\nMax-Forwards: 70\n" +
		"To: <sip:" + user + "@sipwarden.test>\nFrom: <sip:" + user + "@sipwarden.test>;tag=p1\nCall-ID: plain-" + user + "\n" +
		"CSeq: 1 REGISTER\nContact: <sip:" + user + "@LOCAL>\nExpires: 60\nContent-Length: 0\n\n"
}
