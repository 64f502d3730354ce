package cluster

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sipwarden/sipwarden/store"
)

// appendBinding appends b as JSON, the object encoding/json makes of it
// (store.Binding's field names and omitempty; no HTML escaping, which
// only changes how <, > and & are spelled), without its reflection: the
// writer encodes every binding a REGISTER saves, and json.Marshal was 4%
// of a Redis node's CPU under REGISTER load (docs/bench.md, cluster).
// TestAppendBinding holds it to json.Unmarshal.
func appendBinding(dst []byte, b store.Binding) []byte {
	dst = appendField(dst, '{', "id", b.ID)
	dst = appendField(dst, ',', "aor", b.AOR)
	dst = appendField(dst, ',', "credential_id", b.CredentialID)
	dst = appendField(dst, ',', "contact", b.Contact)
	dst = appendField(dst, ',', "source", b.Source)
	dst = appendField(dst, ',', "transport", b.Transport)
	if b.LocalAddr != "" {
		dst = appendField(dst, ',', "local_addr", b.LocalAddr)
	}
	dst = appendField(dst, ',', "call_id", b.CallID)
	dst = append(dst, `,"cseq":`...)
	dst = strconv.AppendUint(dst, uint64(b.CSeq), 10)
	dst = appendTime(dst, "expires", b.Expires)
	if b.UserAgent != "" {
		dst = appendField(dst, ',', "user_agent", b.UserAgent)
	}
	if b.InstanceID != "" {
		dst = appendField(dst, ',', "instance_id", b.InstanceID)
	}
	if b.RegID != "" {
		dst = appendField(dst, ',', "reg_id", b.RegID)
	}
	dst = appendTime(dst, "registered_at", b.RegisteredAt)
	dst = appendTime(dst, "updated_at", b.UpdatedAt)
	if !b.TokenIssuedAt.IsZero() {
		dst = appendTime(dst, "token_issued_at", b.TokenIssuedAt)
	}
	return append(dst, '}')
}

func appendField(dst []byte, sep byte, name, v string) []byte {
	dst = append(dst, sep, '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return appendString(dst, v)
}

// appendTime appends a time as time.Time.MarshalJSON does (RFC 3339 with
// nanoseconds, for the years it accepts: a binding's are this century's).
func appendTime(dst []byte, name string, t time.Time) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':', '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD (as
// encoding/json does).
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
