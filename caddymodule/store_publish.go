package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// ackMux publishes events into the WEBHOOKS stream as core NATS messages
// with a reply subject, and takes every PubAck on one shared
// subscription: a JetStream stream answers a publish that has a reply
// subject with its PubAck there. Every engine publishes through it: the
// embedded single server, a cluster of gateways and an external NATS.
//
// It does what jetstream.PublishMsg with WithExpectStream does (up to
// pubRetries retries pubRetryWait apart while the stream has no
// responder, the same errors, an event stored only in WEBHOOKS), and two
// things more: it takes only the stream's answers on its inbox
// (isPubAckReply), where nats.go's request multiplexer would take any
// message a subscriber has the server send to a reply subject it saw on
// webhooks.> (a direct get of an event whose body looks like a PubAck
// would be a 2xx before the event is stored), and its wait also ends
// when the store turns out to be full, so the engine needs no per-event
// context.AfterFunc for that.
//
// On the embedded single server it also saves the multiplexer's per event
// costs (a context per request, a reply channel and a map entry, a JSON
// decode of the PubAck) and the Nats-Expected-Stream header. That header
// is one more for nats.go to encode, for nats-server to parse and look up
// on the stream's writer, and it was stored with every event; there it
// would check nothing: on a single server no other stream can take a
// subject of the WEBHOOKS stream (nats-server refuses streams whose
// subjects overlap), and parsePubAck refuses a PubAck from any other
// stream.
type ackMux struct {
	nc *nats.Conn
	// prefix is the reply subject without its token: "<inbox>.".
	prefix string
	// single is true on the embedded single server: reply subjects are
	// reused and events go without Nats-Expected-Stream (see above). On
	// a cluster or an external NATS every publish gets a reply subject
	// of its own and the header, as jetstream.PublishMsg does there: a
	// stream leader that moves, another stream of the account or a
	// mirror are not ours to rule out.
	single bool

	mu sync.Mutex
	// slots are the reply subjects, indexed by their token's low 32
	// bits; free are the slots nobody waits on, reused last in first out
	// so that a few hundred reply subjects serve every publish. A subject
	// nats-server has routed before is in its caches (the stream's
	// client keeps 512, its sublist 1,024): a fresh subject per publish
	// made every PubAck a cache miss, a walk of the sublist and an
	// eviction. Reusing a subject rests on nats-server answering a
	// publish once: its PubAck, an error, or the no-responders status.
	// Subscribers may not publish to the inbox (auth.go), but they see
	// its subjects (a core subscription to webhooks.> receives each
	// publish with its reply subject) and nats-server does not check the
	// reply subject of a request: a subscriber can have the server answer
	// a request of its own (a direct get, a consumer's next message) to
	// the gateway's inbox. deliver therefore takes only what the stream
	// itself sends to a publish (isPubAckReply), and a no-responders
	// status, the one answer that may be followed by the PubAck, moves
	// its slot to a new generation.
	slots []ackSlot
	free  []uint32
}

// ackSlot is one reply subject and the publish waiting on it.
type ackSlot struct {
	// wait is the waiting publish's channel, nil when the slot is free.
	wait chan *nats.Msg
	// gen is the high 32 bits of the slot's token. It grows when a
	// publish gives up before its PubAck came, so that PubAck, if it
	// comes later, names an old token and reaches nobody.
	gen uint32
	// reply is prefix + the token, made when gen changes.
	reply string
}

// The retries of a publish that found no responder: jetstream's own
// defaults (DefaultPubRetryWait, DefaultPubRetryAttempts), which cover a
// stream that is being restarted.
const (
	pubRetryWait = jetstream.DefaultPubRetryWait
	pubRetries   = jetstream.DefaultPubRetryAttempts
)

// expectStream is the Nats-Expected-Stream header value off the single
// server: the server refuses an event whose subject is not the WEBHOOKS
// stream's.
var expectStream = []string{event.StreamName}

// errFullWhileWaiting ends the wait of a publish when the store runs out
// of disk (the engine answers errStoreFull).
var errFullWhileWaiting = errors.New("the store ran out of disk space while the event waited for its PubAck")

// replyChans recycles the one-slot channels a publish waits on.
var replyChans = sync.Pool{New: func() any { return make(chan *nats.Msg, 1) }}

// newAckMux subscribes to the PubAcks of nc's publishes; single is true
// for the embedded single server (ackMux.single).
func newAckMux(nc *nats.Conn, single bool) (*ackMux, error) {
	m := &ackMux{nc: nc, prefix: nc.NewInbox() + ".", single: single}
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
// for any more (its publish gave up) is dropped, and so is anything that
// is not an answer of the stream to a publish (isPubAckReply).
func (m *ackMux) deliver(msg *nats.Msg) {
	noResponders := isNoResponders(msg)
	if !noResponders && !isPubAckReply(msg) {
		return
	}
	// A consumer's message sent here keeps its own subject: the prefix
	// is not a given.
	rest, ok := strings.CutPrefix(msg.Subject, m.prefix)
	if !ok {
		return
	}
	tok, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return
	}
	i, gen := uint32(tok), uint32(tok>>32)
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(i) >= len(m.slots) {
		return
	}
	if s := &m.slots[i]; s.gen == gen && s.wait != nil {
		s.wait <- msg // one slot, one reply per token: never blocks
		s.wait = nil
		if noResponders || !m.single {
			// A subscriber can have nats-server send this status to the
			// inbox (a request of its own to a subject nobody serves);
			// the publish's own PubAck may still come and must reach
			// nobody, least of all the slot's next publish. Off the
			// single server every subject serves one publish.
			s.gen++
			s.reply = m.subject(i, s.gen)
		}
		m.free = append(m.free, i)
	}
}

// pubAckError is the start of a PubAck that refuses a publish: nats-server
// writes JSPubAckResponse with its error first ({"error":{...}, then the
// stream when known; stream.go). Every JetStream API response starts with
// its "type" instead (ApiResponse), so a subscriber's request answered to
// the inbox never looks like either shape.
var pubAckError = []byte(`{"error":`)

// isPubAckReply reports whether msg has the shape of the stream's answer
// to a publish: no reply subject, no headers, and a body that starts as a
// PubAck of WEBHOOKS (pubAckStream: then "seq", or "domain" on a
// JetStream domain) or a PubAck's error. What else a
// subscriber can have nats-server send to the inbox does not: a direct get
// or a consumer's message has headers (and the latter a $JS.ACK reply), a
// JetStream API response starts with "type", an acknowledgement's answer
// is empty.
func isPubAckReply(msg *nats.Msg) bool {
	return msg.Reply == "" && len(msg.Header) == 0 &&
		(bytes.HasPrefix(msg.Data, pubAckStream) || bytes.HasPrefix(msg.Data, pubAckError))
}

// isNoResponders reports whether msg is nats-server's no-responders
// status: no body, the header "Status: 503" (the NATS/1.0 503 status
// line nats.go reads into it).
func isNoResponders(msg *nats.Msg) bool {
	return len(msg.Data) == 0 && msg.Header.Get("Status") == "503"
}

// take gives ch a free reply subject and returns the slot's index and
// the subject.
func (m *ackMux) take(ch chan *nats.Msg) (uint32, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var i uint32
	if n := len(m.free); n > 0 {
		i = m.free[n-1]
		m.free = m.free[:n-1]
	} else {
		i = uint32(len(m.slots))
		m.slots = append(m.slots, ackSlot{})
	}
	s := &m.slots[i]
	if s.reply == "" {
		s.reply = m.subject(i, s.gen)
	}
	s.wait = ch
	return i, s.reply
}

// subject is the reply subject of slot i at generation gen: the token is
// gen<<32 | i in decimal, so a slot that never lost a PubAck keeps a
// short subject.
func (m *ackMux) subject(i, gen uint32) string {
	var buf [20]byte
	return m.prefix + string(strconv.AppendUint(buf[:0], uint64(gen)<<32|uint64(i), 10))
}

// publish stores msg and returns its PubAck. It gives up when ctx ends or
// when full is closed (the store ran out of disk). Off the single server
// it sets msg's Nats-Expected-Stream header, as jetstream's
// WithExpectStream does.
func (m *ackMux) publish(ctx context.Context, full <-chan struct{}, msg *nats.Msg) (*jetstream.PubAck, error) {
	if !m.single {
		if msg.Header == nil {
			msg.Header = nats.Header{}
		}
		msg.Header[jetstream.ExpectedStreamHeader] = expectStream
	}
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

// request publishes msg once with a reply subject of its own until the
// reply comes, and waits for the reply.
func (m *ackMux) request(ctx context.Context, full <-chan struct{}, msg *nats.Msg) (*nats.Msg, error) {
	ch := replyChans.Get().(chan *nats.Msg)
	i, reply := m.take(ch)
	out := nats.Msg{
		Subject: msg.Subject,
		Reply:   reply,
		Header:  msg.Header,
		Data:    msg.Data,
	}
	if err := m.nc.PublishMsg(&out); err != nil {
		m.forget(i, ch)
		return nil, err
	}
	select {
	case reply := <-ch:
		replyChans.Put(ch)
		if isNoResponders(reply) {
			return nil, nats.ErrNoResponders
		}
		return reply, nil
	case <-ctx.Done():
		m.forget(i, ch)
		return nil, ctx.Err()
	case <-full:
		m.forget(i, ch)
		return nil, errFullWhileWaiting
	}
}

// forget stops waiting on slot i and recycles ch, emptied of a reply that
// came meanwhile (deliver sends under the lock, so it is either in the
// channel or will never reach ch). A slot still waiting gets a new
// generation before it is free again: its PubAck may yet come, to the old
// subject, and must reach nobody.
func (m *ackMux) forget(i uint32, ch chan *nats.Msg) {
	m.mu.Lock()
	if s := &m.slots[i]; s.wait == ch {
		s.wait = nil
		s.gen++
		s.reply = m.subject(i, s.gen)
		m.free = append(m.free, i)
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

// pubAckStream is the start of every PubAck of the WEBHOOKS stream,
// with or without a JetStream domain (PubAck's fields: stream, domain,
// seq, duplicate; stream.go).
var pubAckStream = []byte(`{"stream":"` + event.StreamName + `",`)

// parsePubAck reads a PubAck as jetstream.PublishMsg does: an API error
// becomes "nats: <APIError>", a body that is no PubAck ErrInvalidJSAck,
// and a PubAck of another stream than WEBHOOKS an error (jetstream's
// WithExpectStream had the server refuse that publish). The two shapes
// the server writes for an event of the WEBHOOKS stream are read without
// a JSON decoder.
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
	if resp.Stream != event.StreamName {
		return nil, fmt.Errorf("nats: the event was stored in the stream %q, not %s: no other stream may take the subjects %s.>", resp.Stream, event.StreamName, event.SubjectRoot)
	}
	return &resp.PubAck, nil
}
