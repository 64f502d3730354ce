package api_test

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"testing"

	"github.com/sipwarden/sipwarden/api"
)

// FuzzConnectionBody posts arbitrary bodies to POST /v1/connections and
// PATCH /v1/connections/default: the API must never panic or answer 5xx,
// always answer JSON, and store only canonical CIDRs.
func FuzzConnectionBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"pbx"}`,
		`{"name":"pbx","active":false,"allowed_cidrs":["192.0.2.0/24","2001:db8::/32","10.0.0.1"]}`,
		`{"name":"x","allowed_cidrs":["10.0.0.0/33","::ffff:1.2.3.4/120","fe80::1%eth0"]}`,
		`{"allowed_cidrs":null}`,
		`{"allowed_cidrs":[]}`,
		`{"allowed_cidrs":"10.0.0.0/8"}`,
		`{"allowed_cidrs":[1,true,null]}`,
		`{"name":null,"active":null}`,
		`{"name":"\u0000"}`,
		`{"name":"a"} {"name":"b"}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte, patch bool) {
		e := *e
		e.t, e.bodies = t, nil
		method, path := "POST", "/v1/connections"
		if patch {
			method, path = "PATCH", "/v1/connections/default"
		}
		rec := e.do(method, path, string(body))
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("%s: status %d for %q: %s", method, rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("not JSON: %s", rec.Body)
		}
		if rec.Code == http.StatusCreated || rec.Code == http.StatusOK {
			var c api.Connection
			decodeData(t, rec.Body.Bytes(), &c)
			for _, s := range c.AllowedCIDRs {
				p, err := netip.ParsePrefix(s)
				if err != nil || p.Masked().String() != s {
					t.Fatalf("stored a non-canonical CIDR %q for %q", s, body)
				}
			}
		}
	})
}
