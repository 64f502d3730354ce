package registrar

import "testing"

func TestOnEventCallsEveryObserver(t *testing.T) {
	r := New(Config{}, nil, nil, nil, nil)
	var got []int
	r.OnEvent(func(Event) { got = append(got, 1) })
	r.OnEvent(func(Event) { got = append(got, 2) })
	r.observe(Event{})
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("observers called: got %v, want [1 2]", got)
	}
}
