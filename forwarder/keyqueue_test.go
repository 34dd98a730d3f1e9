package forwarder

import "testing"

// TestKeyQueue walks one key through busy, queued, drained and idle, with a
// second key that never waits behind the first.
func TestKeyQueue(t *testing.T) {
	k := newKeyQueue[int]()
	if !k.join("a", 1) {
		t.Fatal("first item of an idle key must go at once")
	}
	if k.join("a", 2) || k.join("a", 3) {
		t.Fatal("items of a busy key must wait")
	}
	if !k.join("b", 10) {
		t.Fatal("another key must not wait behind a")
	}
	if n := k.busy(); n != 2 {
		t.Fatalf("busy keys %d, want 2", n)
	}
	for _, want := range []int{2, 3} {
		v, ok := k.next("a")
		if !ok || v != want {
			t.Fatalf("next(a) = %d, %v; want %d in arrival order", v, ok, want)
		}
	}
	if _, ok := k.next("a"); ok {
		t.Fatal("drained key still yields items")
	}
	if !k.join("a", 4) {
		t.Fatal("a retired key must take a new item at once")
	}
	if _, ok := k.next("b"); ok {
		t.Fatal("b had nothing queued")
	}
	if _, ok := k.next("a"); ok {
		t.Fatal("a had nothing queued")
	}
	if n := k.busy(); n != 0 {
		t.Fatalf("busy keys %d after draining, want 0", n)
	}
}
