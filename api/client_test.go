package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/api"
	"github.com/sipwarden/sipwarden/store"
)

func newClient(t *testing.T) (*api.Client, *env) {
	t.Helper()
	e := newEnv(t)
	ts := httptest.NewServer(e.h)
	t.Cleanup(ts.Close)
	return api.NewClient(ts.URL+"/", testAdminKey, ts.Client()), e
}

func TestClient(t *testing.T) {
	cl, e := newClient(t)
	ctx := context.Background()
	if err := cl.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}

	// Connections.
	f := false
	conn, err := cl.CreateConnection(ctx, api.CreateConnectionRequest{Name: "trunk", Active: &f})
	if err != nil || conn.Name != "trunk" || conn.Active {
		t.Fatalf("CreateConnection: %+v %v", conn, err)
	}
	if got, err := cl.GetConnection(ctx, conn.ID); err != nil || got.ID != conn.ID {
		t.Fatalf("GetConnection: %+v %v", got, err)
	}
	name := "renamed"
	if got, err := cl.UpdateConnection(ctx, conn.ID, api.UpdateConnectionRequest{Name: &name}); err != nil || got.Name != name || got.Active {
		t.Fatalf("UpdateConnection: %+v %v", got, err)
	}
	conns, next, err := cl.ListConnections(ctx, api.PageRequest{Size: 1})
	if err != nil || len(conns) != 1 || next == "" {
		t.Fatalf("ListConnections page 1: %v %q %v", conns, next, err)
	}
	conns2, next2, err := cl.ListConnections(ctx, api.PageRequest{Size: 1, After: next})
	if err != nil || len(conns2) != 1 || next2 != "" || conns2[0].ID == conns[0].ID {
		t.Fatalf("ListConnections page 2: %v %q %v", conns2, next2, err)
	}

	// Credentials.
	exp := e.now.Add(time.Hour)
	cred, err := cl.CreateCredential(ctx, api.CreateCredentialRequest{
		ConnectionID: conn.ID, Username: "alice", Password: "correct-horse-battery",
		ExpiresAt: &exp, Algorithms: []string{"SHA-256"},
	})
	if err != nil || cred.Username != "alice" || cred.ExpiresAt == nil || !cred.ExpiresAt.Equal(exp) || !slices.Equal(cred.Algorithms, []string{"SHA-256"}) {
		t.Fatalf("CreateCredential: %+v %v", cred, err)
	}
	if got, err := cl.GetCredential(ctx, cred.ID); err != nil || got.ID != cred.ID {
		t.Fatalf("GetCredential: %+v %v", got, err)
	}
	tr := true
	list, next, err := cl.ListCredentials(ctx, api.CredentialQuery{ConnectionID: conn.ID, Enabled: &tr, Username: "alice"})
	if err != nil || len(list) != 1 || next != "" {
		t.Fatalf("ListCredentials: %v %q %v", list, next, err)
	}
	pw := "another-long-password"
	tag := "t1"
	got, err := cl.UpdateCredential(ctx, cred.ID, api.UpdateCredentialRequest{Password: &pw, Tag: &tag, ClearExpiresAt: true, ClearAlgorithms: true})
	if err != nil || got.Tag != "t1" || got.ExpiresAt != nil || len(got.Algorithms) != 0 {
		t.Fatalf("UpdateCredential: %+v %v", got, err)
	}
	got, err = cl.UpdateCredential(ctx, cred.ID, api.UpdateCredentialRequest{Enabled: &f, Algorithms: []string{"MD5", "SHA-256"}})
	if err != nil || got.Enabled || !slices.Equal(got.Algorithms, []string{"MD5", "SHA-256"}) {
		t.Fatalf("UpdateCredential: %+v %v", got, err)
	}

	// Errors are *api.Error.
	_, err = cl.CreateCredential(ctx, api.CreateCredentialRequest{Username: "alice", Password: "correct-horse-battery"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !ae.Has(api.CodeUsernameTaken) {
		t.Fatalf("duplicate: got %v, want *api.Error 409 username_taken", err)
	}
	_, err = cl.CreateCredential(ctx, api.CreateCredentialRequest{Username: "bob", Password: "short"})
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Errors[0].Source == nil || ae.Errors[0].Source.Pointer != "/password" {
		t.Fatalf("short password: got %#v", err)
	}
	if err := cl.DeleteConnection(ctx, conn.ID); !errors.As(err, &ae) || !ae.Has(api.CodeConnectionInUse) {
		t.Fatalf("DeleteConnection in use: got %v", err)
	}

	// Registrations.
	e.locs.add(store.Binding{ID: "b1", AOR: "alice", Contact: "sip:alice@192.0.2.1", Expires: e.now.Add(time.Minute)})
	regs, next, err := cl.ListRegistrations(ctx, api.RegistrationQuery{Username: "alice"})
	if err != nil || len(regs) != 1 || regs[0].ExpiresIn != 60 || next != "" {
		t.Fatalf("ListRegistrations: %+v %q %v", regs, next, err)
	}
	if err := cl.DeleteRegistration(ctx, "b1"); err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}
	if err := cl.DeleteRegistration(ctx, "b1"); !api.IsNotFound(err) {
		t.Fatalf("DeleteRegistration again: got %v, want 404", err)
	}

	if err := cl.DeleteCredential(ctx, cred.ID); err != nil {
		t.Fatalf("DeleteCredential: %v", err)
	}
	if _, err := cl.GetCredential(ctx, cred.ID); !api.IsNotFound(err) {
		t.Fatalf("GetCredential after delete: got %v, want 404", err)
	}
	if err := cl.DeleteConnection(ctx, conn.ID); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
}

func TestClientErrors(t *testing.T) {
	_, e := newClient(t)
	ts := httptest.NewServer(e.h)
	defer ts.Close()
	ctx := context.Background()

	bad := api.NewClient(ts.URL, "wrong", nil)
	_, _, err := bad.ListCredentials(ctx, api.CredentialQuery{})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 401 || !ae.Has(api.CodeUnauthorized) {
		t.Fatalf("wrong key: got %v", err)
	}

	// A body that is not an API error still makes an *api.Error.
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	}))
	defer html.Close()
	_, err = api.NewClient(html.URL, "k", nil).GetCredential(ctx, "x")
	if !errors.As(err, &ae) || ae.Status != 502 || len(ae.Errors) != 1 || ae.Errors[0].Detail == "" {
		t.Fatalf("proxy error: got %#v", err)
	}

	// IDs are path-escaped.
	_, err = api.NewClient(ts.URL, testAdminKey, nil).GetCredential(ctx, "../connections")
	if !api.IsNotFound(err) {
		t.Fatalf("escaped id: got %v, want 404", err)
	}
}
