package harness

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// MintTokens mints a JWT for each user's credential through the API
// (GET /v1/credentials?username=, POST /v1/credentials/{id}/token), with
// workers concurrent requests, and returns them in the users' order.
func (a *API) MintTokens(ctx context.Context, users []User, workers int) ([]string, error) {
	out := make([]string, len(users))
	err := forEach(ctx, len(users), workers, func(ctx context.Context, i int) error {
		tok, err := a.mintToken(ctx, users[i].Name)
		if err != nil {
			return fmt.Errorf("token for %s: %w", users[i].Name, err)
		}
		out[i] = tok
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (a *API) mintToken(ctx context.Context, username string) (string, error) {
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := a.do(ctx, http.MethodGet, "/v1/credentials?username="+url.QueryEscape(username), nil, http.StatusOK, &list); err != nil {
		return "", err
	}
	if len(list.Data) != 1 {
		return "", fmt.Errorf("%d credentials named %q", len(list.Data), username)
	}
	var tok struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := a.do(ctx, http.MethodPost, "/v1/credentials/"+list.Data[0].ID+"/token", nil, http.StatusCreated, &tok); err != nil {
		return "", err
	}
	return tok.Data.Token, nil
}

// WriteTokensCSV writes a sipp injection file read in SEQUENTIAL order,
// one "username;token" line per user.
func WriteTokensCSV(path string, users []User, tokens []string) error {
	var b strings.Builder
	b.WriteString("SEQUENTIAL\n")
	for i, u := range users {
		fmt.Fprintf(&b, "%s;%s\n", u.Name, tokens[i])
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
