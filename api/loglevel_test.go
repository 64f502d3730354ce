package api_test

import (
	"encoding/json"
	"log/slog"
	"testing"
)

func TestLogLevel(t *testing.T) {
	e := newEnv(t)
	var lv slog.LevelVar
	e.srv.HandleLogLevel(&lv)

	if rec := e.doKey("", "PUT", "/v1/log-level", `{"level":"debug"}`); rec.Code != 401 {
		t.Fatalf("without a key: got %d, want 401", rec.Code)
	}
	if lv.Level() != slog.LevelInfo {
		t.Fatalf("level changed without a key: %v", lv.Level())
	}
	cases := []struct {
		body    string
		code    int
		want    slog.Level
		errCode string
		pointer string
	}{
		{`{"level":"debug"}`, 200, slog.LevelDebug, "", ""},
		{`{"level":"warn"}`, 200, slog.LevelWarn, "", ""},
		{`{"level":"verbose"}`, 422, slog.LevelWarn, "invalid_value", "/level"},
		{`{"level":"DEBUG"}`, 422, slog.LevelWarn, "invalid_value", "/level"},
		{`{}`, 422, slog.LevelWarn, "required", "/level"},
		{`{"level":null}`, 422, slog.LevelWarn, "required", "/level"},
		{`{"level":3}`, 400, slog.LevelWarn, "invalid_json", "/level"},
		{`{"level":"info","colour":"red"}`, 400, slog.LevelWarn, "unknown_field", "/colour"},
		{`{"level":"error"}`, 200, slog.LevelError, "", ""},
	}
	for _, c := range cases {
		rec := e.do("PUT", "/v1/log-level", c.body)
		if rec.Code != c.code {
			t.Fatalf("%s: got %d %s, want %d", c.body, rec.Code, rec.Body, c.code)
		}
		if lv.Level() != c.want {
			t.Fatalf("%s: level got %v, want %v", c.body, lv.Level(), c.want)
		}
		if c.errCode == "" {
			continue
		}
		var body struct {
			Errors []struct {
				Code   string
				Source struct{ Pointer string }
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
			t.Fatalf("%s: body %s: %v", c.body, rec.Body, err)
		}
		if got := body.Errors[0]; got.Code != c.errCode || got.Source.Pointer != c.pointer {
			t.Errorf("%s: got %s at %q, want %s at %q", c.body, got.Code, got.Source.Pointer, c.errCode, c.pointer)
		}
	}
	rec := e.do("GET", "/v1/log-level", nil)
	if rec.Code != 200 || !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("GET: got %d %s", rec.Code, rec.Body)
	}
	var got struct{ Data struct{ Level string } }
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got.Data.Level != "error" {
		t.Fatalf("GET: got level %q, want error", got.Data.Level)
	}
}
