package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sipwarden/sipwarden/interop/harness"
)

// callsScenario measures calls through the proxy: a sipp UAC
// (testdata/sipp/uac_invite_digest.xml) calls a sipp UAS
// (uas_answer.xml) that registered as the user b.callee from its own
// socket, so that the proxy reaches it over that flow. The callers are the
// bench's users, round-robin; each call authenticates with digest after
// the proxy's 407 (no trusted peer). Each call lasts -call-hold between
// ACK and BYE (sipp -d): with none, a BYE sent right after its ACK may
// overtake it in the proxy and sipp's UAS then aborts the call. The p99
// is that of call set-up (first INVITE to the 200, the 407 round trip
// included); the BYE's p99 must be under the limit too.
func (b *bench) callsScenario() *scenario {
	return &scenario{
		name: "calls", unit: "calls", title: "calls through the proxy",
		flow:  fmt.Sprintf("calls sipp UAC -> server -> sipp UAS registered as a user (INVITE, 407, ACK, INVITE with MD5 Proxy-Authorization, 100, 180, 200, ACK, %v hold, BYE, 200; p99 of set-up, first INVITE to 200; both sides must count every call successful and the BYE's p99 be under the limit too)", b.o.callHold),
		start: b.o.callStart, max: b.o.callMax, duration: b.o.callDur,
		load: b.callsLoad,
	}
}

// callsLoad runs n calls at rate: it registers the callee from a fresh
// port, starts the UAS there and runs the UAC (harness.RunCalls).
func (b *bench) callsLoad(ctx context.Context, transport string, rate, n int, dur time.Duration, dir string) (loadResult, error) {
	run := harness.CallRun{
		UACScenario:      scenarioPath("uac_invite_digest.xml"),
		UASScenario:      scenarioPath("uas_answer.xml"),
		RegisterScenario: scenarioPath("register_digest.xml"),
		Callers:          b.csv,
		Callee:           b.callee,
		Target:           b.cur.sipAddr(),
		Rate:             rate,
		Calls:            n,
		Limit:            max(int(float64(rate)*(2+b.o.callHold.Seconds())), 200), // two seconds of set-up plus the hold
		RecvTimeout:      5 * time.Second,
		Timeout:          3*dur + 30*time.Second,
		Dir:              dir,
		RTT:              true,
		RTTFreq:          rttFreq,
		Hold:             b.o.callHold,
	}
	if transport == "udp" {
		run.Transport = "u1"
		run.BuffSize = 4194304
	} else {
		run.Transport = "t1"
	}
	res, err := harness.RunCalls(ctx, run)
	if err != nil {
		return loadResult{}, err
	}
	uac := res.UAC
	lr := loadResult{
		successful: uac.Successful, failed: uac.Failed,
		retrans:  uac.Retransmissions + res.UASRetransmissions,
		achieved: uac.CallRate, rtts: uac.RTTs,
		sippCPU: float64(uac.CPU.Microseconds())/1000 + res.UASCPU,
	}
	var bad []string
	if uac.ExitCode != 0 {
		bad = append(bad, fmt.Sprintf("UAC exit %d", uac.ExitCode))
	}
	if res.UASExit != nil || res.UASFailed != 0 || res.UASSuccessful != n {
		w := fmt.Sprintf("UAS %d/%d successful, %d failed", res.UASSuccessful, n, res.UASFailed)
		if res.UASExit != nil {
			w += " (" + firstLine(res.UASExit.Error()) + ")"
		}
		bad = append(bad, w)
	}
	if p := harness.Percentile(uac.RTTs2, 99); p < 0 || p >= b.o.maxP99 {
		bad = append(bad, fmt.Sprintf("BYE p99 %d ms (%d samples)", p, len(uac.RTTs2)))
	}
	lr.failures = strings.Join(bad, ", ")
	return lr, nil
}
