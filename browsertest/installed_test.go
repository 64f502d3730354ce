package browsertest

import (
	"strings"
	"testing"
)

func TestInstalledSaysHowToInstall(t *testing.T) {
	err := installed("/nonexistent/chromium")
	if err == nil || !strings.Contains(err.Error(), "scripts/install-peers.sh") || !strings.Contains(err.Error(), "/nonexistent/chromium") {
		t.Errorf("got %v, want an error naming the path and scripts/install-peers.sh", err)
	}
	if err := installed(ExecPath); err != nil {
		t.Errorf("installed(%s): %v (the browser tests need it)", ExecPath, err)
	}
}
