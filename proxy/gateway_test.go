package proxy

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sipwarden/sipwarden/sipuri"
)

// dnsServer is a real DNS server on loopback (UDP) that answers SRV
// queries from a table and everything else with no record, enough for
// Go's resolver.
type dnsServer struct {
	conn  *net.UDPConn
	srv   map[string][]net.SRV // "_sip._udp.gw.test." -> records
	hosts map[string]net.IP    // "a.gw.test." -> an IPv4 address
}

func startDNS(t *testing.T, srv map[string][]net.SRV, hosts map[string]net.IP) *dnsServer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{conn: c, srv: srv, hosts: hosts}
	t.Cleanup(func() { _ = c.Close() })
	go d.serve()
	return d
}

func (d *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n]); out != nil {
			_, _ = d.conn.WriteToUDP(out, from)
		}
	}
}

// answer builds the response to one query (RFC 1035 section 4.1).
func (d *dnsServer) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	// The question: labels, then type and class.
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	question := q[12 : i+5]
	name := strings.ToLower(strings.Join(labels, ".")) + "."
	var recs []net.SRV
	var addr net.IP
	switch qtype {
	case 33:
		recs = d.srv[name]
	case 1:
		addr = d.hosts[name].To4()
	}
	out := make([]byte, 12, 512)
	copy(out, q[:2])
	binary.BigEndian.PutUint16(out[2:], 0x8180) // response, recursion desired and available
	binary.BigEndian.PutUint16(out[4:], 1)
	n := len(recs)
	if addr != nil {
		n = 1
	}
	binary.BigEndian.PutUint16(out[6:], uint16(n))
	out = append(out, question...)
	if addr != nil {
		out = append(out, 0xc0, 12)
		out = binary.BigEndian.AppendUint16(out, 1)
		out = binary.BigEndian.AppendUint16(out, 1)
		out = binary.BigEndian.AppendUint32(out, 60)
		out = binary.BigEndian.AppendUint16(out, 4)
		out = append(out, addr...)
	}
	for _, r := range recs {
		out = append(out, 0xc0, 12) // the question's name
		out = binary.BigEndian.AppendUint16(out, 33)
		out = binary.BigEndian.AppendUint16(out, 1)
		out = binary.BigEndian.AppendUint32(out, 60)
		target := encodeName(r.Target)
		out = binary.BigEndian.AppendUint16(out, uint16(6+len(target)))
		out = binary.BigEndian.AppendUint16(out, r.Priority)
		out = binary.BigEndian.AppendUint16(out, r.Weight)
		out = binary.BigEndian.AppendUint16(out, r.Port)
		out = append(out, target...)
	}
	return out
}

func encodeName(s string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func (d *dnsServer) resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", addr)
	}}
}

// TestResolveHopSRV: RFC 3263 section 4.2 against a real DNS server: a
// gateway name without a port becomes its SRV targets in priority order,
// over the transport's service (_sips._tcp for TLS); a port given, an
// address, or a name without records is used as it is.
func TestResolveHopSRV(t *testing.T) {
	dns := startDNS(t, map[string][]net.SRV{
		"_sip._udp.gw.test.":  {{Target: "b.gw.test.", Port: 5070, Priority: 20, Weight: 1}, {Target: "a.gw.test.", Port: 5080, Priority: 10, Weight: 1}},
		"_sips._tcp.gw.test.": {{Target: "c.gw.test.", Port: 5071, Priority: 10, Weight: 1}},
	}, map[string]net.IP{"a.gw.test.": net.IPv4(127, 0, 0, 11), "b.gw.test.": net.IPv4(127, 0, 0, 12)})
	p := &Proxy{cfg: Config{Resolver: dns.resolver()}, log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		uri  string
		want []Hop
	}{
		{"sip:gw.test", []Hop{{"127.0.0.11", 5080, "udp"}, {"127.0.0.12", 5070, "udp"}}},
		{"sips:gw.test", []Hop{{"c.gw.test", 5071, "tls"}}}, // a target without an address: by name
		{"sip:gw.test:5090", []Hop{{"gw.test", 5090, "udp"}}},
		{"sip:gw.test;transport=tcp", []Hop{{"gw.test", 5060, "tcp"}}}, // no _sip._tcp records
		{"sip:127.0.0.9", []Hop{{"127.0.0.9", 5060, "udp"}}},
	} {
		h, err := sipuri.ParseHop(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if got := p.resolveHop(h); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("resolveHop(%s) = %+v, want %+v", tc.uri, got, tc.want)
		}
		if d := time.Since(start); d > srvTimeout {
			t.Errorf("resolveHop(%s) took %v", tc.uri, d)
		}
	}
}
