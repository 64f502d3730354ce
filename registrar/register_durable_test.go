package registrar

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/sipwarden/sipwarden/digest"
	"github.com/sipwarden/sipwarden/store"
)

// durableSaver is a Durable saver whose saves are stored when the test
// says so: Stored waits for release, then answers with err.
type durableSaver struct {
	mu      sync.Mutex
	seq     uint64
	asked   chan uint64   // the tickets Stored is called with
	release chan struct{} // one Stored call returns per value
	err     error
}

func newDurableSaver() *durableSaver {
	return &durableSaver{asked: make(chan uint64, 16), release: make(chan struct{}, 16)}
}

func (d *durableSaver) SaveBindings(string, []store.Binding, []store.Binding) {
	d.mu.Lock()
	d.seq++
	d.mu.Unlock()
}

func (d *durableSaver) Ticket() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seq
}

func (d *durableSaver) Stored(ctx context.Context, ticket uint64) error {
	d.asked <- ticket
	select {
	case <-d.release:
	case <-time.After(5 * time.Second):
		return errors.New("test: not released")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *durableSaver) Writable() error { return nil }

var _ Durable = (*durableSaver)(nil)

// durableRegister is a REGISTER of alice answering nonce with count nc (""
// nonce: no credentials), with the given Contact and Expires lines.
func durableRegister(t *testing.T, nonce string, nc uint32, contact string) *sip.Request {
	t.Helper()
	authz := ""
	if nonce != "" {
		c := digest.Credentials{Username: "alice", Realm: "sipwarden.test", Nonce: nonce, URI: "sip:sipwarden.test",
			QOP: "auth", CNonce: "c", NC: fmt.Sprintf("%08x", nc), NonceCount: nc}
		resp := digest.Response(c, digest.MD5, "REGISTER", digest.HA1(digest.MD5, "alice", "sipwarden.test", "pw-0123456789"), nil)
		authz = fmt.Sprintf("Authorization: Digest username=\"alice\", realm=\"sipwarden.test\", nonce=\"%s\", uri=\"sip:sipwarden.test\", response=\"%s\", algorithm=MD5, qop=auth, nc=%s, cnonce=\"c\"\r\n", nonce, resp, c.NC)
	}
	raw := fmt.Sprintf("REGISTER sip:sipwarden.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK%d;rport\r\n"+
		"To: <sip:alice@sipwarden.test>\r\nFrom: <sip:alice@sipwarden.test>;tag=1\r\nCall-ID: durable@127.0.0.1\r\n"+
		"CSeq: %d REGISTER\r\n%sMax-Forwards: 70\r\n%sContent-Length: 0\r\n\r\n", nc, nc+1, contact, authz)
	m, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*sip.Request)
	req.SetSource("127.0.0.1:5070")
	req.SetTransport("UDP")
	return req
}

// TestRegisterWaitsUntilStored: with a Durable saver, a REGISTER that
// binds, one that only lists (no Contact) and one that unregisters are
// answered only once Stored returned for their save (the 200 never comes
// before), and 503 with Retry-After when Stored fails; the table keeps
// the change either way (its save is the saver's to retry).
func TestRegisterWaitsUntilStored(t *testing.T) {
	d := newDurableSaver()
	r, loc := newTestRegistrarSaving(t, func(*store.DB) BindingSaver { return d })
	ch := r.Handle(durableRegister(t, "", 0, ""))
	if ch.StatusCode != 401 {
		t.Fatalf("got %d, want a 401 challenge", ch.StatusCode)
	}
	nonce := between(ch.GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	bind := "Contact: <sip:alice@127.0.0.1:5070>\r\nExpires: 600\r\n"
	for i, tc := range []struct {
		name     string
		contact  string
		err      error
		want     int
		bindings int // in the table afterwards
	}{
		{"bind", bind, nil, 200, 1},
		{"query", "", nil, 200, 1},
		{"refresh not stored", bind, errors.New("redis frozen"), 503, 1},
		{"unregister", "Contact: <sip:alice@127.0.0.1:5070>\r\nExpires: 0\r\n", nil, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.mu.Lock()
			d.err = tc.err
			d.mu.Unlock()
			done := make(chan *sip.Response, 1)
			go func() { done <- r.Handle(durableRegister(t, nonce, uint32(i+1), tc.contact)) }()
			select {
			case ticket := <-d.asked:
				if want := d.Ticket(); ticket != want {
					t.Errorf("Stored asked for ticket %d, want %d (the last save's)", ticket, want)
				}
			case res := <-done:
				t.Fatalf("answered %d without waiting for the save to be stored", res.StatusCode)
			case <-time.After(5 * time.Second):
				t.Fatal("no answer and no wait")
			}
			select {
			case res := <-done:
				t.Fatalf("answered %d before the save was stored", res.StatusCode)
			case <-time.After(50 * time.Millisecond):
			}
			d.release <- struct{}{}
			var res *sip.Response
			select {
			case res = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("no answer once stored")
			}
			if res.StatusCode != tc.want {
				t.Fatalf("got %d %s, want %d", res.StatusCode, res.Reason, tc.want)
			}
			if tc.want == 503 {
				if h := res.GetHeader("Retry-After"); h == nil || h.Value() != "5" {
					t.Errorf("the 503 has Retry-After %v, want 5", h)
				}
			}
			if got := len(loc.Lookup("alice")); got != tc.bindings {
				t.Errorf("got %d bindings in the table, want %d", got, tc.bindings)
			}
		})
	}
}

// deferTx is a server transaction that defers (Deferrer): it keeps the
// finishes, and the responses sent through it.
type deferTx struct {
	sip.ServerTransaction
	finishes []func()
	sent     []*sip.Response
}

func (tx *deferTx) Defer(finish func()) bool {
	tx.finishes = append(tx.finishes, finish)
	return true
}

func (tx *deferTx) Respond(res *sip.Response) error {
	tx.sent = append(tx.sent, res)
	return nil
}

// TestRegisterDeferred: through a Deferrer, ServeSIP returns without
// waiting for a save to be stored and without answering; the deferred
// finish waits for it, then answers 200 (or 503 when it was not stored),
// and the REGISTER's event comes with that answer, not before. A refusal
// (the 401 challenge) is answered at once, not deferred; and without a
// Durable saver nothing is deferred.
func TestRegisterDeferred(t *testing.T) {
	d := newDurableSaver()
	r, _ := newTestRegistrarSaving(t, func(*store.DB) BindingSaver { return d })
	var events []Event
	r.OnEvent(func(ev Event) { events = append(events, ev) })
	tx := &deferTx{}
	r.ServeSIP(durableRegister(t, "", 0, ""), tx)
	if len(tx.finishes) != 0 || len(tx.sent) != 1 || tx.sent[0].StatusCode != 401 {
		t.Fatalf("a challenge: %d deferred, sent %v; want it sent at once", len(tx.finishes), tx.sent)
	}
	nonce := between(tx.sent[0].GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	bind := "Contact: <sip:alice@127.0.0.1:5070>\r\nExpires: 600\r\n"
	for i, tc := range []struct {
		err  error
		want int
	}{{nil, 200}, {errors.New("redis frozen"), 503}} {
		d.mu.Lock()
		d.err = tc.err
		d.mu.Unlock()
		tx = &deferTx{}
		events = nil
		r.ServeSIP(durableRegister(t, nonce, uint32(i+1), bind), tx)
		if len(tx.finishes) != 1 || len(tx.sent) != 0 || len(events) != 0 {
			t.Fatalf("binding: %d deferred, %d sent, %d events; want 1 deferred, nothing sent, no event yet", len(tx.finishes), len(tx.sent), len(events))
		}
		select {
		case <-d.asked:
			t.Fatal("ServeSIP waited for the save itself")
		default:
		}
		d.release <- struct{}{}
		tx.finishes[0]()
		if len(tx.sent) != 1 || tx.sent[0].StatusCode != tc.want {
			t.Fatalf("after the finish: sent %v, want one %d", tx.sent, tc.want)
		}
		if len(events) != 1 || events[0].Status != tc.want || events[0].AOR != "alice" || !events[0].Authenticated {
			t.Fatalf("events after the finish: %+v; want one for alice, authenticated, status %d", events, tc.want)
		}
		<-d.asked
	}

	plain, _ := newTestRegistrarSaving(t, nil)
	tx = &deferTx{}
	plain.ServeSIP(durableRegister(t, "", 0, ""), tx)
	nonce = between(tx.sent[0].GetHeader("WWW-Authenticate").Value(), `nonce="`, `"`)
	tx = &deferTx{}
	plain.ServeSIP(durableRegister(t, nonce, 1, bind), tx)
	if len(tx.finishes) != 0 || len(tx.sent) != 1 || tx.sent[0].StatusCode != 200 {
		t.Fatalf("without a Durable saver: %d deferred, sent %v; want a 200 at once", len(tx.finishes), tx.sent)
	}
}

// TestSyncWaitsUntilStored: with a Durable saver (a cluster node's), Sync
// returns once the saves so far are stored, and their saver's error when
// they were not: an operator's removal is not answered 204 before Redis
// has it.
func TestSyncWaitsUntilStored(t *testing.T) {
	d := newDurableSaver()
	d.err = errors.New("not stored in time")
	l := NewLocation(d, nil, nil)
	d.SaveBindings("alice", nil, nil)
	done := make(chan error, 1)
	go func() { done <- l.Sync() }()
	select {
	case ticket := <-d.asked:
		if ticket != 1 {
			t.Errorf("Sync waited for ticket %d, want 1", ticket)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sync did not wait for the saver")
	}
	d.release <- struct{}{}
	if err := <-done; !errors.Is(err, d.err) {
		t.Errorf("Sync: got %v, want the saver's error", err)
	}
}
