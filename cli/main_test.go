package cli

import (
	"testing"

	"github.com/sipwarden/sipwarden/server/servertest"
)

// TestMain sets sipgo's process globals once, as "sipwarden serve" does, before any
// test starts a server.
func TestMain(m *testing.M) { servertest.Main(m) }
