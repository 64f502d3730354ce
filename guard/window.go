package guard

type window struct {
	start     int64 // start of the current fixed window, unix ns
	cur, prev int
}

func (w *window) roll(now, size int64) {
	switch d := now - w.start; {
	case w.start == 0 || d >= 2*size || d < 0:
		w.start, w.cur, w.prev = now, 0, 0
	case d >= size:
		w.start, w.prev, w.cur = w.start+size, w.cur, 0
	}
}

// add counts n at now and returns the estimate.
func (w *window) add(now, size int64, n int) int {
	w.roll(now, size)
	w.cur += n
	return w.estimateRolled(now, size)
}

func (w *window) estimate(now, size int64) int {
	w.roll(now, size)
	return w.estimateRolled(now, size)
}

func (w *window) estimateRolled(now, size int64) int {
	left := size - (now - w.start) // part of the previous window still covered
	return w.cur + int(int64(w.prev)*left/size)
}
