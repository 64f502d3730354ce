package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/browsertest"
)

const page = `<!doctype html>
<html><head><title>harness</title><link rel="icon" href="data:,"><script src="app.js" defer></script></head>
<body>
<label for="name">Name</label><input id="name">
<button id="greet" type="button">Greet</button>
<button id="later" type="button">Later</button>
<button id="throw" type="button">Throw</button>
<button id="off" type="button" disabled>Off</button>
<ol id="log"></ol>
</body></html>`

const app = `
const log = (t) => { const li = document.createElement("li"); li.textContent = t; document.getElementById("log").append(li); };
let typed = "";
document.getElementById("name").addEventListener("input", (e) => { typed = e.target.value; });
document.getElementById("greet").addEventListener("click", () => log("hello " + typed));
document.getElementById("later").addEventListener("click", () => setTimeout(() => log("done later"), 300));
document.getElementById("throw").addEventListener("click", () => { throw new Error("boom"); });
console.log("app loaded");
`

func serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, page)
		case "/app.js":
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, app)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// The helpers work on a real page: fill fires input events, click runs
// handlers, WaitText sees text that comes later, the console is read, and
// an uncaught exception is an error.
func TestHarness(t *testing.T) {
	url := serve(t)
	b := browsertest.Start(t, time.Minute)
	p := b.Open(url + "/")
	p.WaitText("#log", "", 5*time.Second)

	p.Fill("#name", `Ann "the tester"`)
	p.Click("#greet")
	if got := p.WaitText("#log", "hello", 5*time.Second); got != `hello Ann "the tester"` {
		t.Errorf("log: got %q, want %q", got, `hello Ann "the tester"`)
	}
	p.Click("#later")
	start := time.Now()
	p.WaitText("#log", "done later", 5*time.Second)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("text that comes after 300ms seen after %v", d)
	}
	if _, ok := p.Text("#nothing"); ok {
		t.Error("Text of a missing element: got ok")
	}
	if n := browsertest.MustEval[int](p, `document.querySelectorAll("#log li").length`); n != 2 {
		t.Errorf("log entries: got %d, want 2", n)
	}
	if errs := p.Errors(); len(errs) != 0 {
		t.Errorf("errors before the throw: %v", errs)
	}

	p.Click("#throw")
	errs := waitErrors(p)
	if len(errs) != 1 || errs[0].Type != "exception" || !strings.Contains(errs[0].Text, "boom") {
		t.Errorf("errors after the throw: got %v, want the exception boom", errs)
	}
	sawLog := false
	for _, m := range p.Console() {
		if m.Type == "log" && m.Text == "app loaded" {
			sawLog = true
		}
	}
	if !sawLog {
		t.Errorf("console: got %v, want the app's log line", p.Console())
	}
}

// A failed load (404) is an error of the browser's log.
func TestLoadErrorsAreErrors(t *testing.T) {
	url := serve(t)
	b := browsertest.Start(t, time.Minute)
	p := b.Open(url + "/")
	browsertest.MustEval[bool](p, `fetch("/missing").then(() => true)`)
	errs := waitErrors(p)
	if len(errs) != 1 || !strings.Contains(errs[0].Text, "404") || !strings.HasSuffix(errs[0].URL, "/missing") {
		t.Errorf("errors: got %v, want the 404", errs)
	}
}

// waitErrors waits up to 5s for the page's first error, then 200ms more
// for others, and returns them.
func waitErrors(p *browsertest.Page) []browsertest.Message {
	deadline := time.Now().Add(5 * time.Second)
	for len(p.Errors()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return p.Errors()
}

// Every test's browser is its own process, and it is gone when the test
// ends.
func TestBrowserStops(t *testing.T) {
	var pid int
	t.Run("inner", func(t *testing.T) {
		b := browsertest.Start(t, time.Minute)
		pid = b.PID()
		if pid <= 0 {
			t.Fatalf("pid: got %d", pid)
		}
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("browser %d not running: %v", pid, err)
		}
	})
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("browser %d still running after its test ended", pid)
	}
}
