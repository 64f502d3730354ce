// Package reply builds sipwarden's own SIP responses: the registrar's, the
// proxy's and the admission gate's answers all come from one Builder, so
// that they carry the same Server header and go back the same way, and
// errors become statuses in one place (Builder.Error).
package reply

import (
	"errors"
	"net"
	"strconv"

	"github.com/emiago/sipgo/sip"
)

// Builder builds responses to requests this server answers itself. The
// zero value omits the Server header.
type Builder struct {
	// Server is the Server header value; empty omits it.
	Server string
}

// New returns the response code/reason to req. It goes back to the
// packet's source address, as with rport (RFC 3581): clients behind NAT,
// such as Zoiper, often omit rport, and the Via address of a NATed client
// is unreachable.
func (b Builder) New(req *sip.Request, code int, reason string) *sip.Response {
	res := FromRequest(req, code, reason)
	if b.Server != "" {
		res.AppendHeader(sip.NewHeader("Server", b.Server))
	}
	if src := req.Source(); src != "" {
		if _, _, err := net.SplitHostPort(src); err == nil {
			res.SetDestination(src)
		}
	}
	return res
}

// Error answers err: with its own status when it is a StatusError (with
// its extra headers), else 500 Server Internal Error. Callers log err
// when it is not a StatusError; its text never reaches the peer.
func (b Builder) Error(req *sip.Request, err error) *sip.Response {
	se, ok := errors.AsType[StatusError](err)
	if !ok {
		return b.New(req, 500, "Server Internal Error")
	}
	code, reason := se.SIPStatus()
	res := b.New(req, code, reason)
	if h, ok := se.(interface{ SIPHeaders() []sip.Header }); ok {
		for _, x := range h.SIPHeaders() {
			res.AppendHeader(x)
		}
	}
	return res
}

// StatusError is an error that is answered with a SIP status.
type StatusError interface {
	error
	SIPStatus() (code int, reason string)
}

// Status is a StatusError with optional extra headers (Min-Expires for a
// 423, Retry-After for a 503, Unsupported for a 420).
type Status struct {
	Code    int
	Reason  string
	Headers []sip.Header
}

var _ StatusError = (*Status)(nil)

// Errorf returns a *Status error; the reason phrase is what the peer sees.
func Errorf(code int, reason string, headers ...sip.Header) error {
	return &Status{Code: code, Reason: reason, Headers: headers}
}

func (s *Status) Error() string            { return strconv.Itoa(s.Code) + " " + s.Reason }
func (s *Status) SIPStatus() (int, string) { return s.Code, s.Reason }
func (s *Status) SIPHeaders() []sip.Header { return s.Headers }
