package api_test

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/sipwarden/sipwarden/api"
)

// Paging through the calls ends, one page after another, even when the
// list holds an ID twice (a call two cluster nodes both listed): the
// cursor skipped one entry of its ID, and the next page was the same page
// for ever (call list --all --limit 1 hung).
func TestCallPagesEndWithRepeatedIDs(t *testing.T) {
	e := newEnv(t)
	e.srv.SetCalls(fakeCalls{{ID: "a;1;2"}, {ID: "b;1;2"}, {ID: "b;1;2"}, {ID: "c;1;2"}})
	path := "/v1/calls?page[size]=1"
	var seen []string
	for range 10 {
		rec := e.do("GET", path, nil)
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		var page listResponse[api.Call]
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Data {
			seen = append(seen, c.ID)
		}
		if page.Meta.NextCursor == nil {
			if len(seen) < 3 || seen[len(seen)-1] != "c;1;2" {
				t.Errorf("pages ended with %v, want a, b and c", seen)
			}
			return
		}
		path = "/v1/calls?page[size]=1&page[after]=" + url.QueryEscape(*page.Meta.NextCursor)
	}
	t.Fatalf("10 pages and no end: %v", seen)
}
