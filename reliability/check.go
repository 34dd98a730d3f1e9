package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// report is the checker's account of one run.
type report struct {
	Sent    int `json:"sent"`
	OK      int `json:"acked"`
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
	// Lost counts acknowledged events missing from the stream: must be 0.
	Lost    int      `json:"lost"`
	LostIDs []string `json:"lost_ids,omitempty"`
	// UnknownStored counts unknown outcomes that were stored after all.
	UnknownStored int `json:"unknown_stored"`
	// FailedStored counts non-2xx answers whose event was stored anyway:
	// a 503 for a publish that timed out may be (the provider's retry is
	// then a duplicate); a 4xx must never be.
	FailedStored int `json:"failed_stored"`
	// Undelivered counts acknowledged events the sink never got: must be 0.
	Undelivered int `json:"undelivered"`
	// Duplicates counts deliveries beyond the first per Idempotency-Key.
	Duplicates int `json:"duplicates_delivered"`
	// DedupedOnce is whether a sink deduplicating by Idempotency-Key saw
	// every acknowledged event exactly once.
	DedupedOnce bool `json:"deduped_sink_sees_each_once"`
	// StreamDuplicates counts ids stored more than once: must be 0.
	StreamDuplicates int `json:"stream_duplicates"`
	// NonOK counts every answer other than a 2xx, by status and problem.
	NonOK map[string]int `json:"non_2xx"`
}

// String is a one-line summary.
func (r report) String() string {
	keys := make([]string, 0, len(r.NonOK))
	for k, v := range r.NonOK {
		keys = append(keys, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(keys)
	return fmt.Sprintf("sent %d: acked %d, failed %d, unknown %d (stored %d) | lost %d, undelivered %d, duplicates delivered %d, deduped sink sees each once: %v, stored twice %d | failed but stored %d | non-2xx: %s",
		r.Sent, r.OK, r.Failed, r.Unknown, r.UnknownStored, r.Lost, r.Undelivered, r.Duplicates, r.DedupedOnce, r.StreamDuplicates, r.FailedStored, strings.Join(keys, ", "))
}

// violations lists what broke the promise.
func (r report) violations() []string {
	var v []string
	if r.Lost > 0 {
		v = append(v, fmt.Sprintf("%d acknowledged events lost (e.g. %v)", r.Lost, r.LostIDs))
	}
	if r.Undelivered > 0 {
		v = append(v, fmt.Sprintf("%d acknowledged events never delivered", r.Undelivered))
	}
	if r.StreamDuplicates > 0 {
		v = append(v, fmt.Sprintf("%d events stored twice", r.StreamDuplicates))
	}
	if !r.DedupedOnce {
		v = append(v, "a sink deduplicating by Idempotency-Key did not see every acknowledged event once")
	}
	return v
}

// check compares the recorder with the stream and, when s is not nil, the
// sink, waiting for deliveries to finish while they progress (giving up
// after deliverWait without progress).
func check(rec *recorder, stored map[string]int, s *sink, deliverWait time.Duration) report {
	ok, failed, unknown := rec.ids(outcomeOK), rec.ids(outcomeFailed), rec.ids(outcomeUnknown)
	r := report{OK: len(ok), Failed: len(failed), Unknown: len(unknown), NonOK: rec.statusCounts()}
	r.Sent = r.OK + r.Failed + r.Unknown
	for _, id := range ok {
		if stored[eventID(id)] == 0 {
			r.Lost++
			if len(r.LostIDs) < 10 {
				r.LostIDs = append(r.LostIDs, id)
			}
		}
	}
	for _, id := range unknown {
		if stored[eventID(id)] > 0 {
			r.UnknownStored++
		}
	}
	for _, id := range failed {
		if stored[eventID(id)] > 0 {
			r.FailedStored++
		}
	}
	for _, n := range stored {
		if n > 1 {
			r.StreamDuplicates++
		}
	}
	r.DedupedOnce = true
	if s == nil {
		return r
	}
	r.Undelivered = s.waitDelivered(ok, deliverWait)
	d := s.deliveries()
	for _, n := range d {
		r.Duplicates += n - 1
	}
	// The deduplicating view: the set of keys. Each acknowledged event is
	// in it once by construction if it was delivered at all, and nothing
	// that was never stored may be in it.
	for key := range d {
		if stored[key] == 0 {
			r.DedupedOnce = false
		}
	}
	r.DedupedOnce = r.DedupedOnce && r.Undelivered == 0
	return r
}

// connectNATS connects to the gateway's NATS client listener, with the
// credential the gateway keeps in its store directory when there is one.
func connectNATS(addr, store string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("reliability-checker"), nats.Timeout(5 * time.Second)}
	// The gateway generates the subscriber credential on first start
	// (an nkey seed, caddymodule/auth.go); subscribers log in with it.
	if seed := filepath.Join(store, "subscriber.nk"); exists(seed) {
		opt, err := nats.NkeyOptionFromSeed(seed)
		if err != nil {
			return nil, fmt.Errorf("subscriber credential: %w", err)
		}
		opts = append(opts, opt)
	}
	nc, err := nats.Connect("nats://"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to the gateway's NATS listener %s: %w", addr, err)
	}
	return nc, nil
}

// storedIDs reads every event of the stream through the gateway's NATS
// listener and counts them by Hookgate-Id.
func storedIDs(addr, store, stream string) (map[string]int, error) {
	nc, err := connectNATS(addr, store)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	ids := map[string]int{}
	if s.CachedInfo().State.Msgs == 0 {
		return ids, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ids[m.Headers().Get(event.HeaderID)]++
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= last {
				return ids, nil
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("read stream %s: no message after %d read, want up to sequence %d", stream, len(ids), last)
		}
	}
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
