package forwarder

import "sync"

// keyQueue keeps per-key ordering: at most one item per key is out (being
// delivered); the others wait in arrival order behind it. A key is busy
// from the join that let its first item go until next reports the queue
// empty.
type keyQueue[T any] struct {
	mu sync.Mutex
	// q holds, per busy key, the items waiting; an empty slice means the
	// key is busy with nothing behind it.
	q map[string][]T
}

func newKeyQueue[T any]() *keyQueue[T] { return &keyQueue[T]{q: make(map[string][]T)} }

// join reports whether v may go now (its key was idle and is now busy);
// false means v was queued behind the key's item in flight.
func (k *keyQueue[T]) join(key string, v T) (goNow bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if q, busy := k.q[key]; busy {
		k.q[key] = append(q, v)
		return false
	}
	k.q[key] = nil
	return true
}

// next pops the item waiting next behind key, which the caller then
// handles as the key's item in flight. When none waits it retires the key
// (the next join goes at once) and reports false.
func (k *keyQueue[T]) next(key string) (v T, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	q := k.q[key]
	if len(q) == 0 {
		delete(k.q, key)
		return v, false
	}
	v = q[0]
	k.q[key] = q[1:]
	return v, true
}

// busy reports how many keys have an item out.
func (k *keyQueue[T]) busy() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.q)
}
