package server_test

import (
	"testing"

	"github.com/sipwarden/sipwarden/server/servertest"
)

// testVersion is the version the test nodes report.
const testVersion = servertest.Version

// TestMain sets sipgo's process globals once, as `sipwarden serve` does,
// before any test starts a node.
func TestMain(m *testing.M) { servertest.Main(m) }
