package caddymodule

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/forwarder"
)

// Reading the event log out of JetStream without reading every event:
// pages walk stream sequences backwards (newest first) in windows, each
// window one or a few direct get batches; a subject filter (source,
// version, type) is applied by the store, which keeps per-subject state
// and skips blocks without a match; a time range becomes a range of
// sequences through the store's own time index (start_time).

// maxWindow bounds how many sequences one window of a backward walk spans.
const maxWindow = 1 << 20

// seqOf returns the stream sequence a direct get stamped on m.
func seqOf(m *nats.Msg) uint64 {
	n, _ := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	return n
}

// subjectOf returns the subject a direct get stamped on m.
func subjectOf(m *nats.Msg) string { return m.Header.Get(jetstream.SubjectHeader) }

// storedAt returns the store time a direct get stamped on m.
func storedAt(m *nats.Msg) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	return t
}

// seqRange is a half-open range of stream sequences [lo, hi).
type seqRange struct{ lo, hi uint64 }

// streamRange returns the sequences of stream stored within [since, until)
// (zero times are open ends), and the stream's info.
func streamRange(ctx context.Context, js jetstream.JetStream, stream string, since, until time.Time) (seqRange, *jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return seqRange{}, nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	info := s.CachedInfo()
	r := seqRange{lo: info.State.FirstSeq, hi: info.State.LastSeq + 1}
	if info.State.Msgs == 0 {
		return seqRange{}, info, nil
	}
	nc := js.Conn()
	if !since.IsZero() {
		seq, err := seqAtTime(ctx, nc, stream, since)
		if err != nil {
			return seqRange{}, nil, err
		}
		r.lo = max(r.lo, seq)
	}
	if !until.IsZero() {
		seq, err := seqAtTime(ctx, nc, stream, until)
		if err != nil {
			return seqRange{}, nil, err
		}
		r.hi = min(r.hi, seq)
	}
	return r, info, nil
}

// seqAtTime returns the sequence of the first message stored at or after
// t, or the next sequence to be used when there is none.
func seqAtTime(ctx context.Context, nc *nats.Conn, stream string, t time.Time) (uint64, error) {
	t = t.UTC()
	msgs, err := forwarder.DirectBatch(ctx, nc, stream, forwarder.DirectRequest{StartTime: &t})
	if err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return ^uint64(0), nil
	}
	return seqOf(msgs[0]), nil
}

// readForward returns the messages of stream in [r.lo, r.hi) matching
// filter ("" for all), oldest first, asking for up to batch messages per
// request, and stops after limit messages (0: no limit).
func readForward(ctx context.Context, nc *nats.Conn, stream, filter string, r seqRange, batch, limit int) ([]*nats.Msg, error) {
	var out []*nats.Msg
	for next := r.lo; next < r.hi; {
		n := batch
		if limit > 0 {
			n = min(n, limit-len(out))
		}
		if filter == "" {
			n = int(min(uint64(n), r.hi-next))
		}
		msgs, err := forwarder.DirectBatch(ctx, nc, stream, forwarder.DirectRequest{Seq: next, NextBySubject: filter, Batch: n})
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if seqOf(m) >= r.hi {
				return out, nil
			}
			out = append(out, m)
		}
		if len(msgs) < n || (limit > 0 && len(out) >= limit) {
			break
		}
		next = seqOf(msgs[len(msgs)-1]) + 1
	}
	return out, nil
}

// walkBack visits the messages of stream in r matching filter, newest
// first, one window at a time, until visit returns false or r is done.
//
// A window starts at want sequences (twice that with a filter). With a
// filter: a window without a match jumps straight to the newest match
// below it (multi_last up to a sequence, from the store's per-subject
// index), or ends the walk when there is none; a window with few matches
// grows, and one with far more than needed shrinks before it is read in
// full. So a rare filter costs a few requests, not a pass per message.
func walkBack(ctx context.Context, nc *nats.Conn, stream, filter string, r seqRange, want int, visit func(window []*nats.Msg) bool) error {
	initial := uint64(max(want, 1))
	limit := 0
	if filter != "" {
		initial *= 2
		limit = 4*want + 64
	}
	window := initial
	for hi := r.hi; hi > r.lo; {
		lo := r.lo
		if hi-r.lo > window {
			lo = hi - window
		}
		msgs, err := readForward(ctx, nc, stream, filter, seqRange{lo, hi}, max(want+1, 64), limit)
		if err != nil {
			return err
		}
		if limit > 0 && len(msgs) >= limit && window > initial {
			window = max(initial, window/8) // dense: read less of it
			continue
		}
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
		if len(msgs) > 0 && !visit(msgs) {
			return nil
		}
		hi = lo
		switch {
		case len(msgs) == 0 && filter != "" && hi > r.lo:
			top, found, err := newestBelow(ctx, nc, stream, filter, hi)
			if err != nil {
				window = min(window*4, maxWindow) // too many subjects: grow
				continue
			}
			if !found || top < r.lo {
				return nil
			}
			hi, window = top+1, initial
		case uint64(len(msgs)) < window/8:
			window = min(window*4, maxWindow)
		}
	}
	return nil
}

// newestBelow returns the sequence of the newest message of stream below
// seq matching filter.
func newestBelow(ctx context.Context, nc *nats.Conn, stream, filter string, seq uint64) (uint64, bool, error) {
	if seq <= 1 {
		return 0, false, nil
	}
	msgs, err := forwarder.DirectBatch(ctx, nc, stream, forwarder.DirectRequest{MultiLast: []string{filter}, UpToSeq: seq - 1})
	if err != nil {
		return 0, false, err
	}
	var top uint64
	for _, m := range msgs {
		top = max(top, seqOf(m))
	}
	return top, top > 0, nil
}
