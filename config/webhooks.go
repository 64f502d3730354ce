package config

import "time"

// Webhooks configures the delivery of connections' webhook events (the
// URLs, timeouts and secrets are per connection, through the API).
type Webhooks struct {
	// QueueSize bounds the events waiting for delivery; a full queue
	// drops events rather than slow the SIP path. One connection's take
	// at most a tenth of it. Default 10000.
	QueueSize int `yaml:"queue_size"`
	// Workers is how many of a connection's events are delivered at once;
	// connections deliver independently. Default 4.
	Workers int `yaml:"workers"`
	// Attempts per URL (the connection's URL, then its failover URL).
	// Default 3.
	Attempts int `yaml:"attempts"`
	// Backoff is the wait after a failed attempt, doubled after each one.
	// Default 1s.
	Backoff Duration `yaml:"backoff"`
}

func (w *Webhooks) setDefaults() {
	if w.QueueSize == 0 {
		w.QueueSize = 10000
	}
	if w.Workers == 0 {
		w.Workers = 4
	}
	if w.Attempts == 0 {
		w.Attempts = 3
	}
	if w.Backoff == 0 {
		w.Backoff = Duration(time.Second)
	}
}

func (w *Webhooks) validate(bad func(key string, v any, why string)) {
	if w.QueueSize < 1 || w.QueueSize > 1_000_000 {
		bad("webhooks.queue_size", w.QueueSize, "want 1 to 1000000")
	}
	if w.Workers < 1 || w.Workers > 256 {
		bad("webhooks.workers", w.Workers, "want 1 to 256")
	}
	if w.Attempts < 1 || w.Attempts > 10 {
		bad("webhooks.attempts", w.Attempts, "want 1 to 10")
	}
	if w.Backoff.D() < time.Millisecond || w.Backoff.D() > time.Hour {
		bad("webhooks.backoff", w.Backoff.D(), "want 1ms to 1h")
	}
}
