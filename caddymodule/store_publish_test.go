package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// TestParsePubAck: the server's two PubAck shapes for a WEBHOOKS event are
// read without JSON, anything else as jetstream.PublishMsg reads it.
func TestParsePubAck(t *testing.T) {
	for _, tc := range []struct {
		data string
		want jetstream.PubAck
		err  string
	}{
		{data: `{"stream":"WEBHOOKS","seq":22}`, want: jetstream.PubAck{Stream: "WEBHOOKS", Sequence: 22}},
		{data: `{"stream":"WEBHOOKS","seq":7,"duplicate": true}`, want: jetstream.PubAck{Stream: "WEBHOOKS", Sequence: 7, Duplicate: true}},
		{data: `{"stream":"WEBHOOKS","domain":"hub","seq":3}`, want: jetstream.PubAck{Stream: "WEBHOOKS", Domain: "hub", Sequence: 3}},
		{data: `{"stream":"WEBHOOKS","seq":9,"duplicate": true,"batch":"b","count":2}`, want: jetstream.PubAck{Stream: "WEBHOOKS", Sequence: 9, Duplicate: true}},
		{data: `{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`, err: "maximum bytes exceeded"},
		{data: `{"stream":"WEBHOOKS","seq":}`, err: jetstream.ErrInvalidJSAck.Error()},
		{data: `{}`, err: jetstream.ErrInvalidJSAck.Error()},
		{data: `{"stream":"OTHER","seq":4}`, err: `stored in the stream "OTHER"`},
		{data: ``, err: jetstream.ErrInvalidJSAck.Error()},
	} {
		got, err := parsePubAck([]byte(tc.data))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one with %q", tc.data, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.data, err)
		case *got != tc.want:
			t.Errorf("%s: %+v, want %+v", tc.data, *got, tc.want)
		}
	}
	if _, err := parsePubAck([]byte(`{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`)); !isMaxBytes(err) {
		t.Errorf("a max_store refusal is not recognized: %v", err)
	}
}

// TestPinPubAckShape: the embedded server still writes the PubAcks
// parsePubAck reads without JSON. If a nats-server upgrade changes them,
// events are still stored (the JSON path reads them) but each costs a
// decode again: update pubAckOK and parsePubAck.
func TestPinPubAckShape(t *testing.T) {
	e := startStore(t, "1s", false, 0)
	msg := &nats.Msg{Subject: event.SubjectRoot + ".v1.pin.test", Header: nats.Header{jetstream.MsgIDHeader: []string{"pin:1"}}, Data: []byte("{}")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, suffix := range []string{"}", `,"duplicate": true}`} {
		reply, err := e.acks.request(ctx, nil, msg)
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := bytes.CutPrefix(reply.Data, pubAckOK)
		if !ok || !bytes.HasSuffix(rest, []byte(suffix)) {
			t.Fatalf("PubAck %s: want %s<seq>%s", reply.Data, pubAckOK, suffix)
		}
		if !isPubAckReply(reply) {
			t.Fatalf("PubAck %s (header %v, reply %q) is not taken by isPubAckReply", reply.Data, reply.Header, reply.Reply)
		}
	}
	// A refused publish: its PubAck starts with the error (JSPubAckResponse).
	refused := &nats.Msg{Subject: msg.Subject, Header: nats.Header{jetstream.ExpectedLastSeqHeader: []string{"999999"}}, Data: []byte("{}")}
	reply, err := e.acks.request(ctx, nil, refused)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(reply.Data, pubAckError) || !isPubAckReply(reply) {
		t.Fatalf("refused publish answered %s (header %v): want a PubAck starting with %s", reply.Data, reply.Header, pubAckError)
	}
}

// TestPubAckInboxIgnoresForeignReplies: a subscriber of the NATS listener
// sees the gateway's reply subjects on webhooks.> and has nats-server
// answer requests of its own there (direct gets, a consumer's next
// message, acknowledgements). None of those may be taken for a PubAck:
// every post gets 200 and the duplicate flag of its own event. On the
// code that took any message on the inbox, some posts got 503 and later
// ones the PubAck of another event.
func TestPubAckInboxIgnoresForeignReplies(t *testing.T) {
	listen := freeAddr(t)
	g := startGateway(t, gatewayConfig{Global: "\t\tlisten " + listen + "\n\t\tuser billing\n\t\tpassword {env.HOOKGATE_TEST_NATS_PASSWORD}"})
	nc, err := nats.Connect("nats://"+listen, nats.UserInfo("billing", testNATSPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	replies := make(chan string, 4096)
	if _, err := nc.Subscribe(event.SubjectRoot+".>", func(m *nats.Msg) {
		select {
		case replies <- m.Reply:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if st, _, b := g.post("/webhooks/v1/demo", []byte(`{}`), map[string]string{"X-Id": fmt.Sprintf("seed%d", i), "X-Type": "t"}); st != 200 {
			t.Fatalf("seed %d: %d %s", i, st, b)
		}
	}
	var inbox []string
	for len(replies) > 0 {
		inbox = append(inbox, <-replies)
	}
	if len(inbox) == 0 || inbox[0] == "" {
		t.Fatalf("the subscriber saw no reply subject (%q): the attack needs one", inbox)
	}
	// A pull consumer of the subscriber's own, whose next messages it
	// asks to be sent to the gateway's inbox.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateConsumer(ctx, event.StreamName, jetstream.ConsumerConfig{Durable: "prober", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	attacked := make(chan int)
	go func() {
		n := 0
		defer func() { attacked <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			reply := inbox[i%len(inbox)]
			_ = nc.PublishMsg(&nats.Msg{Subject: "$JS.API.DIRECT.GET." + event.StreamName, Reply: reply, Data: []byte(fmt.Sprintf(`{"seq":%d}`, 1+i%100))})
			_ = nc.PublishMsg(&nats.Msg{Subject: "$JS.API.STREAM.INFO." + event.StreamName, Reply: reply})
			_ = nc.PublishMsg(&nats.Msg{Subject: "$JS.API.CONSUMER.MSG.NEXT." + event.StreamName + ".prober", Reply: reply, Data: []byte(`{"batch":1,"no_wait":true}`)})
			n += 3
			if i%50 == 0 {
				_ = nc.Flush()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var (
		mu               sync.Mutex
		failed, wrongDup int
	)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 30 {
				id := fmt.Sprintf("w%d-%d", w, i/2) // each id twice: new, then a duplicate
				st, _, b := g.post("/webhooks/v1/demo", []byte(`{"n":1}`), map[string]string{"X-Id": id, "X-Type": "t"})
				mu.Lock()
				switch {
				case st != 200:
					failed++
				case strings.Contains(string(b), `"duplicate":true`) != (i%2 == 1):
					wrongDup++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	n := <-attacked
	if failed+wrongDup > 0 {
		t.Fatalf("with %d foreign requests answered to the gateway's inbox: %d posts not 200, %d with another event's duplicate flag", n, failed, wrongDup)
	}
	t.Logf("%d foreign requests answered to the gateway's inbox; 480 posts all answered for their own event", n)
}

// TestAckMuxPublish: events are stored and a repeated id is a duplicate
// of the first; a subject no stream takes fails as jetstream's publish
// does, after its retries.
func TestAckMuxPublish(t *testing.T) {
	e := startStore(t, "1s", false, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub := func(subject, id string) (*jetstream.PubAck, error) {
		return e.acks.publish(ctx, nil, &nats.Msg{Subject: subject, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}, Data: []byte("{}")})
	}
	first, err := pub(event.SubjectRoot+".v1.mux.test", "mux:1")
	if err != nil || first.Duplicate || first.Stream != event.StreamName {
		t.Fatalf("first: %+v, %v", first, err)
	}
	again, err := pub(event.SubjectRoot+".v1.mux.test", "mux:1")
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("again: %+v, %v (first %+v)", again, err, first)
	}
	start := time.Now()
	if _, err := pub("nostream.v1.mux", "mux:2"); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("no stream: %v, want ErrNoStreamResponse", err)
	}
	if d := time.Since(start); d < pubRetries*pubRetryWait {
		t.Errorf("no stream answered after %s: the %d retries %s apart did not happen", d, pubRetries, pubRetryWait)
	}
}

// TestAckMuxWaitEnds: a publish whose reply does not come gives up when
// its context ends and when the store turns full; a reply that comes after
// is dropped, and the next publish gets its own.
func TestAckMuxWaitEnds(t *testing.T) {
	e := startStore(t, "1s", false, 0)
	// A plain subscriber takes the subject and answers only when told.
	late := make(chan string, 4)
	sub, err := e.nc.Subscribe("hang.>", func(m *nats.Msg) { late <- m.Reply })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	hang := &nats.Msg{Subject: "hang.x", Data: []byte("{}")}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := e.acks.publish(ctx, nil, hang); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	reply1 := <-late
	full := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := e.acks.publish(context.Background(), full, hang)
		done <- err
	}()
	reply2 := <-late // the second publish waits
	close(full)
	if err := <-done; !errors.Is(err, errFullWhileWaiting) {
		t.Fatalf("full: %v", err)
	}
	// Both replies come late: nobody waits for them.
	for _, reply := range []string{reply1, reply2} {
		if err := e.nc.Publish(reply, []byte(`{"stream":"WEBHOOKS","seq":99}`)); err != nil {
			t.Fatal(err)
		}
	}
	ok := &nats.Msg{Subject: event.SubjectRoot + ".v1.mux.test", Header: nats.Header{jetstream.MsgIDHeader: []string{"mux:after"}}, Data: []byte("{}")}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	ack, err := e.acks.publish(ctx2, nil, ok)
	if err != nil || ack.Sequence != 1 || ack.Duplicate {
		t.Fatalf("after the late replies: %+v, %v", ack, err)
	}
}

// TestAckMuxReusesReplySubjects: publishes reuse the reply subjects of
// those answered before them, so nats-server's caches hold them: one
// subject for sequential publishes, at most one per concurrent publisher.
func TestAckMuxReusesReplySubjects(t *testing.T) {
	e := startStore(t, "1s", false, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pub := func(id string) error {
		_, err := e.acks.publish(ctx, nil, &nats.Msg{Subject: event.SubjectRoot + ".v1.reuse.test", Header: nats.Header{jetstream.MsgIDHeader: []string{id}}, Data: []byte("{}")})
		return err
	}
	for i := range 50 {
		if err := pub(fmt.Sprintf("seq:%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := replySubjects(e.acks); n != 1 {
		t.Fatalf("50 sequential publishes used %d reply subjects, want 1", n)
	}
	const publishers = 8
	errs := make(chan error, publishers)
	for p := range publishers {
		go func() {
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				err = pub(fmt.Sprintf("conc:%d:%d", p, i))
			}
			errs <- err
		}()
	}
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := replySubjects(e.acks); n > publishers {
		t.Fatalf("%d concurrent publishers used %d reply subjects, want at most %d", publishers, n, publishers)
	}
}

// replySubjects is how many reply subjects m has made.
func replySubjects(m *ackMux) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.slots)
}
