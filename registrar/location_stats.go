package registrar

import "github.com/sipwarden/sipwarden/store"

// Per-transport binding counts, kept per shard so that a metrics scrape
// reads 64 small arrays instead of scanning a million bindings. Each
// shard's counts change with its bindings, under the shard's lock, in
// setLocked.

// countedTransports are the transports counted by name; any other is
// counted as "other".
var countedTransports = [...]string{"udp", "tcp", "tls", "ws", "wss", "other"}

type transportCounts [len(countedTransports)]int

func countIndex(tp string) int {
	for i, name := range countedTransports[:len(countedTransports)-1] {
		if tp == name {
			return i
		}
	}
	return len(countedTransports) - 1
}

// replaceLocked moves the counts from the bindings old to the bindings
// new.
func (c *transportCounts) replaceLocked(old, new []store.Binding) {
	for i := range old {
		c[countIndex(old[i].Transport)]--
	}
	for i := range new {
		c[countIndex(new[i].Transport)]++
	}
}

// CountByTransport returns the number of bindings in the table per
// transport ("udp", "tcp", "tls", "ws", "wss", "other"), transports with
// none left out. Bindings that expired but have not been swept yet (the
// sweeper runs every second) are still counted. It takes each shard's
// read lock in turn, for a few nanoseconds: cheap enough for every scrape.
func (l *Location) CountByTransport() map[string]int {
	var sum transportCounts
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		for j, n := range s.count {
			sum[j] += n
		}
		s.mu.RUnlock()
	}
	out := make(map[string]int, len(sum))
	for i, n := range sum {
		if n != 0 {
			out[countedTransports[i]] = n
		}
	}
	return out
}
