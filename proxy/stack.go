package proxy

// stackPad is what growStack reserves: with the frames below it, a
// goroutine's stack grows once to 16 KB, which the deepest path of a
// request or a branch (serve, authentication, sipgo's transaction and
// transport writes) fits in.
const stackPad = 8 << 10

// growStack grows the calling goroutine's stack in one step while it is
// shallow. sipgo runs each request in a goroutine of its own
// (TransactionLayer.handleRequestBackground), and a branch runs in one of
// ours; each starts with a small stack that the proxy's path doubled
// three times, each copy walking every frame of a deep stack to adjust
// its pointers (runtime.copystack: 10% of the CPU at 1,400 calls/s over
// UDP, issue 18). One copy of a few frames costs less.
//
//go:noinline
func growStack() {
	var pad [stackPad]byte
	keepPad(&pad)
}

// keepPad keeps growStack's array (and so its frame) from being removed.
//
//go:noinline
func keepPad(*[stackPad]byte) {}
