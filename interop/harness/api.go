package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// API is a minimal client of sipwarden's REST API, written from its
// documentation (api/README.md) rather than imported, so that the suite
// checks the wire format.
type API struct {
	Base string // http://host:port
	Key  string
	HTTP *http.Client
}

// Registration is one entry of GET /v1/registrations.
type Registration struct {
	ID           string `json:"id"`
	Username     string `json:"username"`
	CredentialID string `json:"credential_id"`
	Contact      string `json:"contact"`
	Source       string `json:"source"`
	Transport    string `json:"transport"`
	UserAgent    string `json:"user_agent"`
	InstanceID   string `json:"instance_id"`
	ExpiresIn    int64  `json:"expires_in"`
}

// Do calls the API: method on path with body (JSON; nil: none), wanting
// status want, decoding the answer's body into out (nil: ignored).
func (a *API) Do(ctx context.Context, method, path string, body any, want int, out any) error {
	return a.do(ctx, method, path, body, want, out)
}

func (a *API) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.Key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: got %s, want %d: %s", method, path, resp.Status, want, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %q: %w", method, path, b, err)
		}
	}
	return nil
}

// CreateCredential creates a credential; algorithms nil means the server's
// list.
func (a *API) CreateCredential(ctx context.Context, username, password string, algorithms []string) error {
	body := map[string]any{"username": username, "password": password}
	if algorithms != nil {
		body["algorithms"] = algorithms
	}
	return a.do(ctx, http.MethodPost, "/v1/credentials", body, http.StatusCreated, nil)
}

// CreateCredentials creates the users' credentials with workers concurrent
// requests and stops at the first error.
func (a *API) CreateCredentials(ctx context.Context, users []User, workers int) error {
	return forEach(ctx, len(users), workers, func(ctx context.Context, i int) error {
		if err := a.CreateCredential(ctx, users[i].Name, users[i].Password, nil); err != nil {
			return fmt.Errorf("credential %s: %w", users[i].Name, err)
		}
		return nil
	})
}

// forEach calls f for 0..n-1 from workers goroutines and stops at the
// first error, which it returns.
func forEach(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return err
	}
	return nil
}

// Registrations lists the live bindings, of one user when username is not
// empty, following the cursor over every page (at most 1000 pages).
func (a *API) Registrations(ctx context.Context, username string) ([]Registration, error) {
	var all []Registration
	after := ""
	for range 1000 {
		q := url.Values{}
		q.Set("page[size]", "1000")
		if username != "" {
			q.Set("username", username)
		}
		if after != "" {
			q.Set("page[after]", after)
		}
		var page struct {
			Data []Registration `json:"data"`
			Meta struct {
				NextCursor string `json:"next_cursor"`
			} `json:"meta"`
		}
		if err := a.do(ctx, http.MethodGet, "/v1/registrations?"+q.Encode(), nil, http.StatusOK, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Data...)
		if page.Meta.NextCursor == "" {
			return all, nil
		}
		after = page.Meta.NextCursor
	}
	return nil, fmt.Errorf("registrations: more than 1000 pages")
}

// User is a SIP username and password.
type User struct {
	Name, Password string
}

// MakeUsers returns n users named prefix00000, prefix00001, ... with random
// 24-character passwords.
func MakeUsers(prefix string, n int) []User {
	users := make([]User, n)
	for i := range users {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		users[i] = User{Name: fmt.Sprintf("%s%05d", prefix, i), Password: hex.EncodeToString(b)}
	}
	return users
}

// WriteUsersCSV writes a sipp injection file read in SEQUENTIAL order, one
// "username;password" line per user. The passwords hold only characters
// that need no escaping in sipp's keyword syntax (no ';', '"', ']').
func WriteUsersCSV(path string, users []User) error {
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for _, u := range users {
		if strings.ContainsAny(u.Name+u.Password, ";\"]\n") {
			return fmt.Errorf("user %q: name or password not usable in a sipp CSV", u.Name)
		}
		fmt.Fprintf(&b, "%s;%s\n", u.Name, u.Password)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
