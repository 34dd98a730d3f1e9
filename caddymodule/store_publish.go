package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// ackMux publishes events into the WEBHOOKS stream of the embedded server
// as core NATS messages with a reply subject, and takes every PubAck on
// one shared subscription: a JetStream stream answers a publish that has a
// reply subject with its PubAck there.
//
// It does what jetstream.PublishMsg with WithExpectStream does (the
// Nats-Expected-Stream header, up to pubRetries retries pubRetryWait apart
// while the stream has no responder, the same errors) without its per
// event costs: a context per request, a reply channel and a map entry
// made by nats.go's request multiplexer, and a JSON decode of the PubAck.
// And its wait also ends when the store turns out to be full, so the
// engine needs no per-event context.AfterFunc for that.
type ackMux struct {
	nc *nats.Conn
	// prefix is the reply subject without its token: "<inbox>.".
	prefix string

	mu      sync.Mutex
	seq     uint64
	waiting map[uint64]chan *nats.Msg
}

// The retries of a publish that found no responder: jetstream's own
// defaults (DefaultPubRetryWait, DefaultPubRetryAttempts), which cover a
// stream that is being restarted.
const (
	pubRetryWait = jetstream.DefaultPubRetryWait
	pubRetries   = jetstream.DefaultPubRetryAttempts
)

// expectStream is the Nats-Expected-Stream header value: the server refuses
// an event whose subject is not the WEBHOOKS stream's.
var expectStream = []string{event.StreamName}

// errFullWhileWaiting ends the wait of a publish when the store runs out
// of disk (the engine answers errStoreFull).
var errFullWhileWaiting = errors.New("the store ran out of disk space while the event waited for its PubAck")

// replyChans recycles the one-slot channels a publish waits on.
var replyChans = sync.Pool{New: func() any { return make(chan *nats.Msg, 1) }}

// newAckMux subscribes to the PubAcks of nc's publishes.
func newAckMux(nc *nats.Conn) (*ackMux, error) {
	m := &ackMux{nc: nc, prefix: nc.NewInbox() + ".", waiting: make(map[uint64]chan *nats.Msg)}
	sub, err := nc.Subscribe(m.prefix+"*", m.deliver)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: PubAck subscription: %w", err)
	}
	// A PubAck must never be dropped as a slow consumer's: the waiters
	// are bounded by the requests in flight.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, fmt.Errorf("embedded NATS: PubAck subscription: %w", err)
	}
	return m, nil
}

// deliver hands a PubAck to the publish waiting for it; one nobody waits
// for any more (its publish gave up) is dropped.
func (m *ackMux) deliver(msg *nats.Msg) {
	tok, err := strconv.ParseUint(msg.Subject[len(m.prefix):], 10, 64)
	if err != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch, ok := m.waiting[tok]; ok {
		delete(m.waiting, tok)
		ch <- msg // one slot, one reply per token: never blocks
	}
}

// publish stores msg and returns its PubAck. It gives up when ctx ends or
// when full is closed (the store ran out of disk). It sets msg's
// Nats-Expected-Stream header, as jetstream's WithExpectStream does.
func (m *ackMux) publish(ctx context.Context, full <-chan struct{}, msg *nats.Msg) (*jetstream.PubAck, error) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header[jetstream.ExpectedStreamHeader] = expectStream
	for try := 0; ; try++ {
		reply, err := m.request(ctx, full, msg)
		if errors.Is(err, nats.ErrNoResponders) && try < pubRetries {
			if werr := waitRetry(ctx, full); werr != nil {
				return nil, werr
			}
			continue
		}
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, jetstream.ErrNoStreamResponse
		}
		if err != nil {
			return nil, err
		}
		return parsePubAck(reply.Data)
	}
}

// waitRetry waits pubRetryWait before the next try, or less when ctx ends
// or the store is full.
func waitRetry(ctx context.Context, full <-chan struct{}) error {
	t := time.NewTimer(pubRetryWait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-full:
		return errFullWhileWaiting
	}
}

// request publishes msg once with a fresh reply subject and waits for the
// reply.
func (m *ackMux) request(ctx context.Context, full <-chan struct{}, msg *nats.Msg) (*nats.Msg, error) {
	ch := replyChans.Get().(chan *nats.Msg)
	m.mu.Lock()
	m.seq++
	tok := m.seq
	m.waiting[tok] = ch
	m.mu.Unlock()
	var buf [20]byte
	out := nats.Msg{
		Subject: msg.Subject,
		Reply:   m.prefix + string(strconv.AppendUint(buf[:0], tok, 10)),
		Header:  msg.Header,
		Data:    msg.Data,
	}
	if err := m.nc.PublishMsg(&out); err != nil {
		m.forget(tok, ch)
		return nil, err
	}
	select {
	case reply := <-ch:
		replyChans.Put(ch)
		if len(reply.Data) == 0 && reply.Header.Get("Status") == "503" {
			return nil, nats.ErrNoResponders
		}
		return reply, nil
	case <-ctx.Done():
		m.forget(tok, ch)
		return nil, ctx.Err()
	case <-full:
		m.forget(tok, ch)
		return nil, errFullWhileWaiting
	}
}

// forget stops waiting for tok's reply and recycles its channel, emptied
// of a reply that came meanwhile (deliver sends under the lock, so it is
// either in the channel or will never come).
func (m *ackMux) forget(tok uint64, ch chan *nats.Msg) {
	m.mu.Lock()
	if _, ok := m.waiting[tok]; ok {
		delete(m.waiting, tok)
	} else {
		<-ch
	}
	m.mu.Unlock()
	replyChans.Put(ch)
}

// pubAckOK is the start of nats-server's PubAck of an event of the
// WEBHOOKS stream on a server without a JetStream domain (stream.go,
// mset.pubAck: {"stream":<name>,"seq":), followed by the sequence and "}"
// or `,"duplicate": true}` (processJetStreamMsgWithBatch).
var pubAckOK = []byte(`{"stream":"` + event.StreamName + `","seq":`)

// parsePubAck reads a PubAck as jetstream.PublishMsg does: an API error
// becomes "nats: <APIError>", a body that is no PubAck ErrInvalidJSAck.
// The two shapes the server writes for an event of the WEBHOOKS stream are
// read without a JSON decoder.
func parsePubAck(data []byte) (*jetstream.PubAck, error) {
	if rest, ok := bytes.CutPrefix(data, pubAckOK); ok {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
		if err == nil {
			switch string(rest[n:]) {
			case "}":
				return &jetstream.PubAck{Stream: event.StreamName, Sequence: seq}, nil
			case `,"duplicate": true}`, `,"duplicate":true}`:
				return &jetstream.PubAck{Stream: event.StreamName, Sequence: seq, Duplicate: true}, nil
			}
		}
	}
	var resp struct {
		jetstream.PubAck
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, jetstream.ErrInvalidJSAck
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("nats: %w", resp.Error)
	}
	if resp.Stream == "" {
		return nil, jetstream.ErrInvalidJSAck
	}
	return &resp.PubAck, nil
}
