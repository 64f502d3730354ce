package web_test

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/browsertest"
	"github.com/sipwarden/sipwarden/web"
)

// The page renders in Chromium, JsSIP 3.13 loads, the defaults come from
// the page's host and the server's ws port (the page said 5066 whatever
// sip.listen.ws was), and nothing lands in the console as an error (a
// CSP violation or a failed load would).
func TestPhonePageInChromium(t *testing.T) {
	srv := servePhoneWith(t, web.Ports{WS: 15066, WSS: 17443})
	b := browsertest.Start(t, time.Minute)
	p := b.Open(srv.URL + "/phone")

	p.WaitText("#log", "ready (JsSIP 3.13.", 10*time.Second)
	if v := browsertest.MustEval[string](p, `window.JsSIP.version`); !strings.HasPrefix(v, "3.13.") {
		t.Errorf("JsSIP.version: got %q, want 3.13.x", v)
	}
	if got := browsertest.MustEval[string](p, `location.pathname`); got != "/phone/" {
		t.Errorf("path after the redirect: got %q, want /phone/", got)
	}
	for _, tc := range []struct{ expr, want string }{
		{`document.title`, "sipwarden test phone"},
		{`document.getElementById("server").value`, "ws://127.0.0.1:15066"},
		{`document.getElementById("domain").value`, "127.0.0.1"},
		{`document.getElementById("reg-status").value`, "unregistered"},
		{`document.getElementById("call-status").value`, "idle"},
		{`document.body.dataset.call`, "idle"},
		{`getComputedStyle(document.getElementById("log")).fontFamily.includes("monospace") ? "styled" : "unstyled"`, "styled"},
		{`["unregister","answer","hangup"].filter(id => !document.getElementById(id).disabled).join()`, ""},
		{`["register","call"].filter(id => document.getElementById(id).disabled).join()`, ""},
		// Every input has a label.
		{`[...document.querySelectorAll("input")].filter(i => i.labels.length === 0).map(i => i.id).join()`, ""},
	} {
		if got := browsertest.MustEval[string](p, tc.expr); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.expr, got, tc.want)
		}
	}

	// Query-string prefill, but never of the server (a link naming
	// another would get the user's token or digest answer sent there).
	p.Navigate(srv.URL + "/phone/?server=ws://127.0.0.1:1/ws&user=alice&target=bob&password=nope")
	p.WaitText("#log", "ready", 10*time.Second)
	for _, tc := range []struct{ expr, want string }{
		{`document.getElementById("server").value`, "ws://127.0.0.1:15066"},
		{`document.getElementById("user").value`, "alice"},
		{`document.getElementById("target").value`, "bob"},
		{`document.getElementById("password").value`, ""},
	} {
		if got := browsertest.MustEval[string](p, tc.expr); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.expr, got, tc.want)
		}
	}

	// Register without a username: the page says what is missing.
	p.Fill("#user", "")
	p.Click("#register")
	p.WaitText("#log", "fill in the username to register", 5*time.Second)

	time.Sleep(200 * time.Millisecond) // late console messages
	if errs := p.Errors(); len(errs) != 0 {
		t.Errorf("console errors: %v", errs)
	}
	for _, m := range p.Console() {
		if strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("CSP report: %v", m)
		}
	}

	// A server typed in by hand on another host is refused by the CSP:
	// nothing leaves for it.
	evil, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := evil.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	p.Fill("#server", "ws://"+evil.Addr().String())
	p.Fill("#user", "alice")
	p.Fill("#password", "a-secret-password")
	p.Click("#register")
	deadline := time.Now().Add(5 * time.Second)
	for !slices.ContainsFunc(p.Console(), func(m browsertest.Message) bool {
		return strings.Contains(m.Text, "Content Security Policy") && strings.Contains(m.Text, evil.Addr().String())
	}) {
		if time.Now().After(deadline) {
			t.Fatalf("no CSP refusal of ws://%s in the console: %v", evil.Addr(), p.Console())
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-accepted:
		t.Error("the page connected to a server on another host")
	case <-time.After(500 * time.Millisecond):
	}
}
