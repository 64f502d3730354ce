// Package browsertest drives Debian's Chromium, headless, from Go tests
// (through github.com/chromedp/chromedp): open a page, fill fields,
// click, wait for a text, read what the page wrote to its console.
//
// Each Browser is its own chromium process with a fresh temporary
// profile and fake media devices (a WebRTC call needs no microphone and
// no permission prompt), bounded by a timeout and stopped when the test
// ends: gracefully first, then by killing that process (and the helpers
// chromedp finds by its unique profile directory), never any other.
// Chromium comes from Debian's package, which scripts/install-peers.sh
// installs; nothing is downloaded.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ExecPath is the browser started: Debian's chromium launcher.
const ExecPath = "/usr/bin/chromium"

// Flags are the command-line flags every browser starts with (besides
// chromedp's --remote-debugging-pipe and --user-data-dir). Without
// --disable-features=WebRtcHideLocalIpsWithMdns, ICE offers .local names
// that nothing resolves here; the background-networking ones keep
// Chromium from calling Google's hosts on a closed network.
var Flags = []string{
	"--headless=new",
	"--no-sandbox",
	"--use-fake-ui-for-media-stream",
	"--use-fake-device-for-media-stream",
	"--disable-features=WebRtcHideLocalIpsWithMdns",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-gpu",
}

// ActionTimeout bounds one step (a click, a fill, a navigation).
const ActionTimeout = 15 * time.Second

// Browser is a chromium process started for one test.
type Browser struct {
	t      testing.TB
	ctx    context.Context // the browser's first tab; parent of every Page
	cancel context.CancelFunc
	pid    int
}

// Start starts chromium for t and stops it when t ends. The browser lives
// at most timeout (0: 2 minutes). extraFlags follow Flags (such as
// "--ignore-certificate-errors" for a wss server with a self-signed
// certificate). When chromium is missing, the test fails and says how to
// install it.
func Start(t testing.TB, timeout time.Duration, extraFlags ...string) *Browser {
	t.Helper()
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	if err := installed(ExecPath); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(ExecPath)}
	for _, f := range append(append([]string(nil), Flags...), extraFlags...) {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if hasValue {
			opts = append(opts, chromedp.Flag(name, value))
		} else {
			opts = append(opts, chromedp.Flag(name, true))
		}
	}
	// About one start in a hundred, with several browsers starting at once
	// on this 2-core machine, chromium 148 dies of SIGSEGV during its
	// start, before it answers on its DevTools pipe (chromedp: "chrome
	// failed to start", with only the usual startup noise in the output;
	// exit status 139 seen through a wrapper script). That is not what a
	// test tests, so a failed start is retried once, and logged.
	var b *Browser
	var err error
	for attempt := 1; ; attempt++ {
		b, err = launch(t, timeout, opts)
		if err == nil {
			break
		}
		if attempt == 2 || !strings.Contains(err.Error(), "chrome failed to start") {
			t.Fatalf("browsertest: start %s: %v", ExecPath, err)
		}
		t.Logf("browsertest: start %s failed, trying again: %v", ExecPath, err)
	}
	t.Cleanup(b.stop)
	return b
}

// installed returns an error saying how to install chromium when path
// is not there.
func installed(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("browsertest: %s not found (%v): run `bash scripts/install-peers.sh` (it installs Debian's chromium); the browser tests are part of the suite", path, err)
	}
	return nil
}

// launch starts one browser; on an error it has stopped it again.
func launch(t testing.TB, timeout time.Duration, opts []chromedp.ExecAllocatorOption) (*Browser, error) {
	life, lifeCancel := context.WithTimeout(context.Background(), timeout)
	alloc, allocCancel := chromedp.NewExecAllocator(life, opts...)
	ctx, _ := chromedp.NewContext(alloc)
	b := &Browser{t: t, ctx: ctx, cancel: func() { allocCancel(); lifeCancel() }}
	if err := chromedp.Do(ctx); err != nil { // starts the browser and its first tab
		b.cancel()
		return nil, err
	}
	if c := chromedp.FromContext(ctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		b.pid = c.Browser.Process().Pid
	}
	return b, nil
}

// PID returns the process id of the browser.
func (b *Browser) PID() int { return b.pid }

// stop closes the browser gracefully (up to 10 s), then ends its
// context, which kills the process if it is still there; last, it checks
// that the process is gone and kills that pid if not.
func (b *Browser) stop() {
	done := make(chan struct{})
	go func() {
		_ = chromedp.Cancel(b.ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.t.Logf("browsertest: chromium %d did not close within 10s; killing it", b.pid)
	}
	b.cancel()
	<-done
	if b.pid > 0 && syscall.Kill(b.pid, 0) == nil {
		// Still running or not yet reaped: give it a moment, then kill it.
		time.Sleep(100 * time.Millisecond)
		if syscall.Kill(b.pid, 0) == nil {
			b.t.Errorf("browsertest: chromium %d still running after close; killing it", b.pid)
			_ = syscall.Kill(b.pid, syscall.SIGKILL)
		}
	}
}

// Message is something a page wrote to its console, an uncaught
// exception, or an entry of the browser's log (such as a failed load or a
// Content-Security-Policy violation).
type Message struct {
	Type string // log, info, warning, error, exception, ...
	Text string
	URL  string
}

func (m Message) String() string {
	if m.URL != "" {
		return m.Type + ": " + m.Text + " (" + m.URL + ")"
	}
	return m.Type + ": " + m.Text
}

// Page is a tab of a Browser.
type Page struct {
	t      testing.TB
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	console []Message
}

// Open opens url in a new tab and waits for it to load.
func (b *Browser) Open(url string) *Page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &Page{t: b.t, ctx: ctx, cancel: cancel}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		b.t.Fatalf("browsertest: open a tab: %v", err)
	}
	msgs := chromedp.Console(ctx) // subscribed from here on
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, Message{Type: string(m.Type), Text: m.Text, URL: m.URL})
			p.mu.Unlock()
		}
	}()
	b.t.Cleanup(func() {
		if b.t.Failed() {
			for _, m := range p.Console() {
				b.t.Logf("browser console of %s: %s", url, m)
			}
		}
		cancel()
	})
	p.Navigate(url)
	return p
}

// Navigate loads url in the tab and waits for its load event.
func (p *Page) Navigate(url string) {
	p.t.Helper()
	if err := p.do(chromedp.Navigate(url)); err != nil {
		p.t.Fatalf("browsertest: navigate to %s: %v", url, err)
	}
}

func (p *Page) do(a chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, ActionTimeout)
	defer cancel()
	return chromedp.Do(ctx, a)
}

// Eval evaluates a JavaScript expression in p and decodes its value into
// a T (awaiting it when it is a promise).
func Eval[T any](p *Page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, ActionTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// MustEval is Eval failing the test on an error.
func MustEval[T any](p *Page, expr string) T {
	p.t.Helper()
	v, err := Eval[T](p, expr)
	if err != nil {
		p.t.Fatalf("browsertest: evaluate %s: %v", expr, err)
	}
	return v
}

// js returns s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// Fill sets the value of the element sel (a CSS selector, such as
// "#user") to value, as typing would: input and change events fire.
func (p *Page) Fill(sel, value string) {
	p.t.Helper()
	expr := `(() => {
		const el = document.querySelector(` + js(sel) + `);
		if (!el) return "no element";
		if (el.disabled) return "disabled";
		el.focus();
		el.value = ` + js(value) + `;
		el.dispatchEvent(new Event("input", {bubbles: true}));
		el.dispatchEvent(new Event("change", {bubbles: true}));
		return "";
	})()`
	if problem := MustEval[string](p, expr); problem != "" {
		p.t.Fatalf("browsertest: fill %s: %s", sel, problem)
	}
}

// Click clicks the element sel with the mouse, after checking that it
// exists and is enabled.
func (p *Page) Click(sel string) {
	p.t.Helper()
	expr := `(() => {
		const el = document.querySelector(` + js(sel) + `);
		if (!el) return "no element";
		if (el.disabled) return "disabled";
		return "";
	})()`
	if problem := MustEval[string](p, expr); problem != "" {
		p.t.Fatalf("browsertest: click %s: %s", sel, problem)
	}
	if err := p.do(chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.t.Fatalf("browsertest: click %s: %v", sel, err)
	}
}

// Enabled reports whether the element sel exists and is not disabled.
func (p *Page) Enabled(sel string) bool {
	p.t.Helper()
	return MustEval[bool](p, `(() => { const el = document.querySelector(`+js(sel)+`); return !!el && !el.disabled; })()`)
}

// Text returns the text content of the element sel; ok is false when
// there is no such element.
func (p *Page) Text(sel string) (text string, ok bool) {
	p.t.Helper()
	v := MustEval[*string](p, `(() => { const el = document.querySelector(`+js(sel)+`); return el ? el.textContent : null; })()`)
	if v == nil {
		return "", false
	}
	return *v, true
}

// WaitText waits up to timeout for the text of the element sel to
// contain want, polling every 50 ms, and returns the text. On timeout the
// test fails with the text seen last.
func (p *Page) WaitText(sel, want string, timeout time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text, ok := p.Text(sel)
		if ok && strings.Contains(text, want) {
			return text
		}
		if time.Now().After(deadline) {
			if !ok {
				p.t.Fatalf("browsertest: %q not seen in %s within %v: no such element", want, sel, timeout)
			}
			if len(text) > 3000 {
				text = "..." + text[len(text)-3000:]
			}
			p.t.Fatalf("browsertest: %q not seen in %s within %v; its text: %q", want, sel, timeout, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Console returns what the page wrote to its console so far.
func (p *Page) Console() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Message(nil), p.console...)
}

// Errors returns the console messages of type error and the uncaught
// exceptions so far.
func (p *Page) Errors() []Message {
	var errs []Message
	for _, m := range p.Console() {
		if m.Type == string(chromedp.ConsoleError) || m.Type == string(chromedp.ConsoleException) {
			errs = append(errs, m)
		}
	}
	return errs
}

// Screenshot writes a PNG of the page's viewport to file.
func (p *Page) Screenshot(file string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, ActionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatalf("browsertest: screenshot: %v", err)
	}
}

// Close closes the tab.
func (p *Page) Close() { p.cancel() }
