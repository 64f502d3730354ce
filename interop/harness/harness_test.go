package harness

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	v := make([]int, 100)
	for i := range v {
		v[i] = 100 - i // 100..1, unsorted
	}
	for _, tc := range []struct {
		v    []int
		p    float64
		want int
	}{
		{v, 99, 99},
		{v, 100, 100},
		{v, 50, 50},
		{v, 1, 1},
		{[]int{7}, 99, 7},
		{[]int{1, 2, 3}, 99, 3},
		{nil, 99, -1},
	} {
		if got := Percentile(tc.v, tc.p); got != tc.want {
			t.Errorf("Percentile(%d values, %v): got %d, want %d", len(tc.v), tc.p, got, tc.want)
		}
	}
	if v[0] != 100 {
		t.Errorf("Percentile sorted its argument")
	}
}

func TestProcAddr(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:5060", "10.1.2.3:65535", "192.168.0.1:1"} {
		enc, err := procAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseProcAddr(enc)
		if err != nil {
			t.Fatal(err)
		}
		if got != addr {
			t.Errorf("parseProcAddr(procAddr(%q)) = %q (via %q)", addr, got, enc)
		}
	}
	if got, _ := procAddr("127.0.0.1:5060"); got != "0100007F:13C4" {
		t.Errorf("procAddr(127.0.0.1:5060): got %q, want 0100007F:13C4", got)
	}
}

// ConnLocalAddrs finds the local end of our own connection to a listener.
func TestConnLocalAddrs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := ConnLocalAddrs(os.Getpid(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// The accepted end is ours too, but its remote is the client's port.
	if want := []string{c.LocalAddr().String()}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLastStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat.csv")
	content := "StartTime;SuccessfulCall(C);FailedCall(C);Retransmissions(C);\n" +
		"2026-01-01\t00:00:00.0 1.0;0;0;0;\n" +
		"2026-01-01\t00:00:05.0 5.0;998;2;17;\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := lastStats(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"SuccessfulCall(C)": "998", "FailedCall(C)": "2", "Retransmissions(C)": "17"} {
		if m[k] != want {
			t.Errorf("%s: got %q, want %q", k, m[k], want)
		}
	}
}

func TestReadRTTs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x_1_rtt.csv")
	if err := os.WriteFile(path, []byte("Date_ms;response_time_ms;rtd_no\n12.001;3;1\n24.001;0;1\n30;9;2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readRTTs(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 0}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got2, err := readRTD(path, "2")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{9}; !slices.Equal(got2, want) {
		t.Errorf("rtd 2: got %v, want %v", got2, want)
	}
}

func TestConfigYAML(t *testing.T) {
	y := Config{DataDir: "/d", UDP: "127.0.0.1:1", HTTP: "127.0.0.1:2", Algorithms: []string{"SHA-256", "MD5"}}.YAML()
	for _, want := range []string{
		`data_dir: "/d"`, `listen: {udp: "127.0.0.1:1", tcp: "-", tls: "-", ws: "-", wss: "-"}`, "algorithms: [SHA-256, MD5]",
		"qop: [auth]", `api_key: "` + DefaultAPIKey + `"`, "max_contacts: 1",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("YAML lacks %q:\n%s", want, y)
		}
	}
}

func TestProcStop(t *testing.T) {
	dir := t.TempDir()
	// A shell that ignores SIGTERM: Stop must kill its group.
	p, err := StartProc(ProcSpec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", "trap '' TERM; sleep 30 & wait"}, Dir: dir, LogPath: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(200 * time.Millisecond); err == nil {
		t.Errorf("Stop of a process that ignores SIGTERM: got nil, want an error saying it was killed")
	}
	if !p.Exited() || time.Since(start) > 5*time.Second {
		t.Errorf("process not stopped promptly")
	}
}

func TestUDPCounters(t *testing.T) {
	if _, err := UDPRcvbufErrors(); err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	drops, err := UDPSocketDrops(os.Getpid(), c.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if drops != 0 {
		t.Errorf("drops of a new socket: got %d, want 0", drops)
	}
}
