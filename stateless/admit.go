package stateless

import (
	"bytes"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// Shedding at admission (issue 18). The workers record how long each
// request they take waited in the queue (its sojourn time). While that
// exceeds Config.MaxQueueDelay, a UDP REGISTER without credentials is
// answered 503 by the reader the moment it is read: from its raw bytes,
// without a copy into the queue, a parse or a worker. Queued, the same
// request would wait MaxQueueDelay and more, then be refused anyway by
// the worker (Front.late), at the cost of a full parse; answered at
// admission it costs a scan of its header lines and one write, and it
// does not lengthen the wait of the requests behind it. The signal is
// CoDel's (RFC 8289): the time requests spend queued, not the queue's
// length. It lapses when no request was taken for MaxQueueDelay: idle
// workers measure nothing.
//
// Requests with credentials finish flows already begun and are always
// queued, as are requests this copy does not handle (rawRefusal): the
// worker answers those.

// sojourn is the wait of the last request a worker took and when it was
// taken (Unix ns).
type sojourn struct {
	wait atomic.Int64
	at   atomic.Int64
}

func (s *sojourn) note(wait time.Duration, now time.Time) {
	s.wait.Store(int64(wait))
	s.at.Store(now.UnixNano())
}

// overloaded reports whether requests are waiting longer than max, as of
// a measurement younger than max.
func (s *sojourn) overloaded(max time.Duration, now time.Time) bool {
	return max > 0 && s.wait.Load() > int64(max) && now.UnixNano()-s.at.Load() < int64(max)
}

// shedAtAdmission answers the UDP REGISTER msg 503 at once when the front
// is overloaded and msg has no credentials, and reports whether it did.
func (f *Front) shedAtAdmission(msg []byte, j job) bool {
	if j.conn != nil || j.pc == nil || !f.soj.overloaded(f.cfg.MaxQueueDelay, time.Now()) || hasCredentials(msg) {
		return false
	}
	src, ok := j.addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	bp := f.bufs.Get().(*[]byte)
	defer f.putBuf(bp)
	secs := f.cfg.RetryAfter + rand.IntN(f.cfg.RetryAfter)
	res, ok := rawRefusal((*bp)[:0], msg, src, secs, f.tagSeed)
	*bp = res[:0]
	if !ok {
		return false
	}
	f.shed(ShedOverload)
	if _, err := j.pc.WriteTo(res, j.addr); err != nil {
		f.log.Debug("send 503 at admission", "error", err)
	}
	return true
}

// rawRefusal appends to dst the 503 Service Unavailable answer to the
// request msg, from src, with Retry-After: retryAfter, built from msg's
// raw header lines: every Via, From, To, Call-ID and CSeq copied in
// order (RFC 3261 8.2.6.2), a To tag added when it has none (the same
// for the same request, as 8.2.7 asks of a stateless UAS), received and
// the rport value on the top Via when it asks for rport (RFC 3581
// section 4). ok is false for what this copy does not handle safely,
// which the queued path (a full parse) answers instead: a line not ended
// by CRLF or with a bare CR, a folded line, a top Via line holding
// several Vias, a From, To, Call-ID or CSeq missing or repeated, a To
// whose tag is written unusually.
func rawRefusal(dst, msg []byte, src *net.UDPAddr, retryAfter int, seed maphash.Seed) (out []byte, ok bool) {
	end, ok := headerEnd(msg)
	if !ok || end <= 0 {
		return dst, false
	}
	head := msg[:end]
	i := bytes.Index(head, []byte("\r\n"))
	if i < 0 {
		return dst, false
	}
	rest := head[i+2:]
	dst = append(dst, "SIP/2.0 503 Service Unavailable\r\n"...)
	var (
		vias                   int
		from, to, callID, cseq []byte
		tagKey                 maphash.Hash
	)
	tagKey.SetSeed(seed)
	for len(rest) > 2 { // the empty line that ends the header is 2 bytes
		k := bytes.Index(rest, []byte("\r\n"))
		if k < 0 {
			return dst, false
		}
		line := rest[:k]
		rest = rest[k+2:]
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' || bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, '\n') >= 0 {
			return dst, false // folded, or a bare CR or LF
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return dst, false
		}
		name := bytes.TrimRight(line[:colon], " \t")
		switch {
		case bytes.EqualFold(name, []byte("Via")) || bytes.EqualFold(name, []byte("v")):
			if vias == 0 {
				var good bool
				if dst, good = appendTopVia(dst, line, colon, src); !good {
					return dst, false
				}
				tagKey.Write(line)
			} else {
				dst = append(append(dst, line...), "\r\n"...)
			}
			vias++
		case bytes.EqualFold(name, []byte("From")) || bytes.EqualFold(name, []byte("f")):
			if from != nil {
				return dst, false
			}
			from = line
		case bytes.EqualFold(name, []byte("To")) || bytes.EqualFold(name, []byte("t")):
			if to != nil {
				return dst, false
			}
			to = line
		case bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")):
			if callID != nil {
				return dst, false
			}
			callID = line
		case bytes.EqualFold(name, []byte("CSeq")):
			if cseq != nil {
				return dst, false
			}
			cseq = line
		}
	}
	if vias == 0 || from == nil || to == nil || callID == nil || cseq == nil {
		return dst, false
	}
	dst = append(append(dst, from...), "\r\n"...)
	has, sure := toTag(to[bytes.IndexByte(to, ':')+1:])
	if !sure {
		return dst, false
	}
	dst = append(dst, to...)
	if !has {
		tagKey.Write(from)
		tagKey.Write(callID)
		tagKey.Write(cseq)
		dst = append(dst, ";tag="...)
		dst = strconv.AppendUint(dst, tagKey.Sum64(), 36)
	}
	dst = append(dst, "\r\n"...)
	dst = append(append(dst, callID...), "\r\n"...)
	dst = append(append(dst, cseq...), "\r\n"...)
	dst = append(dst, "Retry-After: "...)
	dst = strconv.AppendInt(dst, int64(retryAfter), 10)
	dst = append(dst, "\r\nContent-Length: 0\r\n\r\n"...)
	return dst, true
}

// appendTopVia appends the top Via line (its value after colon), with
// received and the rport value when it holds an empty rport parameter.
// ok is false when the line holds more than one Via.
func appendTopVia(dst, line []byte, colon int, src *net.UDPAddr) ([]byte, bool) {
	if bytes.IndexByte(line, ',') >= 0 {
		return dst, false
	}
	at := -1 // the end of an empty rport parameter
	for off := colon; ; {
		k := indexFold(line[off:], ";rport")
		if k < 0 {
			break
		}
		e := off + k + len(";rport")
		if e == len(line) || line[e] == ';' || line[e] == ' ' || line[e] == '\t' {
			at = e
			break
		}
		off = e
	}
	if at < 0 {
		return append(append(dst, line...), "\r\n"...), true
	}
	dst = append(dst, line[:at]...)
	dst = append(dst, '=')
	dst = strconv.AppendInt(dst, int64(src.Port), 10)
	dst = append(dst, ";received="...)
	dst = append(dst, src.IP.String()...)
	dst = append(dst, line[at:]...)
	return append(dst, "\r\n"...), true
}

// toTag tells whether a To value carries a tag parameter: after its
// URI's closing '>' when it has one, anywhere in it otherwise (without
// angle brackets a To has no URI parameters: RFC 3261 20.10). sure is
// false when "tag" appears otherwise than as ";tag=" (";tag =", say):
// then the copy is not trusted to add or keep one.
func toTag(v []byte) (has, sure bool) {
	if i := bytes.LastIndexByte(v, '>'); i >= 0 {
		v = v[i:]
	}
	if indexFold(v, ";tag=") >= 0 {
		return true, true
	}
	return false, indexFold(v, "tag") < 0
}

// indexFold is bytes.Index ignoring ASCII case, for a lower-case sep.
func indexFold(b []byte, sep string) int {
	for i := 0; i+len(sep) <= len(b); i++ {
		match := true
		for k := 0; k < len(sep); k++ {
			c := b[i+k]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sep[k] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}
