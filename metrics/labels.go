package metrics

import "github.com/prometheus/client_golang/prometheus"

// The method label: the methods sipwarden knows (RFC 3261 and its
// extensions), and "other" for any other token a client sends, so that a
// flood of made-up methods cannot create series.
var methodNames = [numMethods]string{
	"REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "SUBSCRIBE", "NOTIFY",
	"REFER", "INFO", "MESSAGE", "PRACK", "UPDATE", "PUBLISH", "other",
}

const (
	numMethods  = 15
	methodOther = numMethods - 1
)

// methodIndex maps a method (as sent: SIP methods are case-sensitive, RFC
// 3261 7.1) to its label index without allocating.
func methodIndex(m string) int {
	switch m {
	case "REGISTER":
		return 0
	case "INVITE":
		return 1
	case "ACK":
		return 2
	case "BYE":
		return 3
	case "CANCEL":
		return 4
	case "OPTIONS":
		return 5
	case "SUBSCRIBE":
		return 6
	case "NOTIFY":
		return 7
	case "REFER":
		return 8
	case "INFO":
		return 9
	case "MESSAGE":
		return 10
	case "PRACK":
		return 11
	case "UPDATE":
		return 12
	case "PUBLISH":
		return 13
	}
	return methodOther
}

// The transport label, lowercase.
var transportNames = [numTransports]string{"udp", "tcp", "tls", "ws", "wss", "other"}

const (
	numTransports  = 6
	transportOther = numTransports - 1
)

// transportIndex maps a transport name in either case ("UDP" from sipgo,
// "udp" in bindings) to its label index without allocating.
func transportIndex(tp string) int {
	switch tp {
	case "udp", "UDP":
		return 0
	case "tcp", "TCP":
		return 1
	case "tls", "TLS":
		return 2
	case "ws", "WS":
		return 3
	case "wss", "WSS":
		return 4
	}
	return transportOther
}

// funcGauge is a gauge read at scrape time from a function set after
// registration; 0 while none is set.
type funcGauge struct {
	desc *prometheus.Desc
	f    interface{ Load() *func() int }
}

func newFuncGauge(d *prometheus.Desc, f interface{ Load() *func() int }) *funcGauge {
	return &funcGauge{desc: d, f: f}
}

func (g *funcGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *funcGauge) Collect(ch chan<- prometheus.Metric) {
	v := 0
	if f := g.f.Load(); f != nil {
		v = (*f)()
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(v))
}

// funcGaugeVec is a labelled gauge whose samples collect writes at scrape
// time.
type funcGaugeVec struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric, *prometheus.Desc)
}

func newFuncGaugeVec(d *prometheus.Desc, collect func(chan<- prometheus.Metric, *prometheus.Desc)) *funcGaugeVec {
	return &funcGaugeVec{desc: d, collect: collect}
}

func (g *funcGaugeVec) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }
func (g *funcGaugeVec) Collect(ch chan<- prometheus.Metric) { g.collect(ch, g.desc) }
