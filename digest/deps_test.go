package digest_test

import (
	"go/build"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbidden reports why digest must not depend on path, or "".
func forbidden(path string, standard bool) string {
	switch {
	case path == "net" || strings.HasPrefix(path, "net/"):
		return "digest does no I/O: no net"
	case !standard:
		return "digest imports only the standard library"
	}
	return ""
}

// TestImportsOnlyStandardLibrary keeps digest free of transports, sipgo and
// bbolt (Tailscale's deptest): first its own imports, read with go/parser,
// then everything it pulls in, listed by the go command.
func TestImportsOnlyStandardLibrary(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			pkg, err := build.Import(path, "", build.FindOnly)
			standard := err == nil && pkg.Goroot
			if why := forbidden(path, standard); why != "" {
				t.Errorf("%s imports %q: %s", name, path, why)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatalf("got no imports in %d files, want some: is the test in the package directory?", len(files))
	}

	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("transitive check needs the go command: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	self := ""
	deps := 0
	for line := range strings.Lines(string(out)) {
		path, std, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			t.Fatalf("go list: unexpected line %q", line)
		}
		if std == "false" && self == "" && strings.HasSuffix(path, "/digest") {
			self = path // go list prints the package itself last, as non-standard
			continue
		}
		if why := forbidden(path, std == "true"); why != "" {
			t.Errorf("digest depends on %q: %s", path, why)
		}
		deps++
	}
	if self == "" || deps == 0 {
		t.Fatalf("go list: got package %q and %d dependencies, want digest and some", self, deps)
	}
}
