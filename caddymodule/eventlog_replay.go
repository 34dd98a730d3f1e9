package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// Replays and redrives are durable: each (event, destination) to deliver
// again is one message in the work-queue stream WEBHOOKS_REPLAY, on
// subject "hookgate_replay.<destination>". Each destination has its own
// consumer of it ("replay-<destination>") that delivers one replay at a
// time through the destination's forwarder (forwarder.Forwarder.Replay):
// the stored bytes, the same idempotency key, the destination's rate
// limit and circuit breaker. Fresh events keep the destination's own
// consumer and workers, so a bulk replay never holds them back; a replay
// adds at most one request in flight to the destination's concurrency.
const (
	replayStream      = "WEBHOOKS_REPLAY"
	replaySubjectRoot = "hookgate_replay"
	// replayRetryIdle is how long a replay waits when its forwarder is not
	// running (a reload under way).
	replayRetryIdle = 5 * time.Second
)

// replayTask is one message of WEBHOOKS_REPLAY.
type replayTask struct {
	Seq     uint64 `json:"seq"`
	EventID string `json:"event_id"`
	// Job is the bulk replay or redrive job it belongs to, "" for none.
	Job string `json:"job,omitempty"`
}

// ensureEventLog creates the streams of the event log. Called by App.Start
// before the forwarders start.
func (a *App) ensureEventLog(ctx context.Context) error {
	events := a.streams[0]
	if err := forwarder.EnsureAttemptStream(ctx, a.engine.js, events.MaxAge, events.Replicas); err != nil {
		return err
	}
	_, err := a.engine.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        replayStream,
		Description: "Hookgate replays and redrives waiting for delivery",
		Subjects:    []string{replaySubjectRoot + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      events.MaxAge,
		MaxBytes:    64 << 20,
		Duplicates:  2 * time.Minute,
		Replicas:    max(1, events.Replicas),
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", replayStream, err)
	}
	return nil
}

// startEventLog creates the event log's streams and starts one replay
// consumer per configured destination. App.Start calls it before it
// starts the forwarders; replays wait until their forwarder runs.
func (a *App) startEventLog(ctx context.Context) error {
	if err := a.ensureEventLog(ctx); err != nil {
		return err
	}
	startSampler()
	for _, cfg := range a.fwdConfigs {
		name := cfg.Name
		cons, err := a.engine.js.CreateOrUpdateConsumer(ctx, replayStream, jetstream.ConsumerConfig{
			Durable:       "replay-" + name,
			Description:   "Hookgate replays to destination " + name,
			FilterSubject: replaySubjectRoot + "." + name,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.Timeout + 30*time.Second,
			MaxAckPending: 1,
		})
		if err != nil {
			return fmt.Errorf("destination %q: replay consumer: %w", name, err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) { a.onReplay(name, m) }, jetstream.PullMaxMessages(1),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				a.logger.Debug("consume replays", zap.String("destination", name), zap.Error(err))
			}))
		if err != nil {
			return fmt.Errorf("destination %q: consume replays: %w", name, err)
		}
		a.fwdMu.Lock()
		a.replayers = append(a.replayers, cc)
		a.fwdMu.Unlock()
	}
	return nil
}

// stopEventLog stops taking replays; a replay in flight finishes or comes
// back after its AckWait. App.Stop calls it before stopping the
// forwarders.
func (a *App) stopEventLog() {
	a.fwdMu.Lock()
	ccs := a.replayers
	a.replayers = nil
	a.fwdMu.Unlock()
	for _, cc := range ccs {
		cc.Stop()
	}
}

// onReplay delivers one queued replay.
func (a *App) onReplay(dest string, m jetstream.Msg) {
	var t replayTask
	if err := json.Unmarshal(m.Data(), &t); err != nil || t.Seq == 0 {
		a.logger.Error("unreadable replay task; dropped", zap.String("destination", dest), zap.Error(err))
		_ = m.Term()
		return
	}
	f := a.forwarder(dest)
	if f == nil {
		_ = m.NakWithDelay(replayRetryIdle)
		return
	}
	md, err := m.Metadata()
	attempts := 0
	if err == nil {
		attempts = int(md.NumDelivered) - 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.Config().Timeout+10*time.Second)
	defer cancel()
	res, err := f.Replay(ctx, t.Seq, attempts)
	job := jobs.get(t.Job)
	switch {
	case errors.Is(err, forwarder.ErrEventGone):
		a.logger.Warn("replay of an expired event dropped", zap.String("event_id", t.EventID), zap.String("destination", dest))
		job.count(forwarder.StatusFailed)
		_ = m.Term()
	case errors.Is(err, forwarder.ErrNotRunning):
		_ = m.NakWithDelay(replayRetryIdle) // a reload under way
	case errors.Is(err, forwarder.ErrFiltered):
		a.logger.Info("replay skipped: the destination's filter rejects the event", zap.String("event_id", t.EventID), zap.String("destination", dest))
		job.skip()
		_ = m.Term()
	case err != nil:
		a.replayError(ctx, f, dest, t, m, attempts, err)
	case res.Status == forwarder.StatusRetrying:
		_ = m.NakWithDelay(res.RetryIn)
	default:
		job.count(res.Status)
		_ = m.Ack()
	}
}

// replayError settles a replay that could not be attempted (an error
// other than a delivery's failure): it is tried again after the
// destination's backoff until its max_attempts are spent, then the event
// is dead-lettered again, so that one broken event never holds up the
// replays queued behind it.
func (a *App) replayError(ctx context.Context, f *forwarder.Forwarder, dest string, t replayTask, m jetstream.Msg, attempts int, err error) {
	log := a.logger.With(zap.String("event_id", t.EventID), zap.String("destination", dest), zap.Int("attempt", attempts+1))
	if attempts+1 < f.Config().MaxAttempts {
		log.Warn("replay failed; will retry", zap.Error(err))
		_ = m.NakWithDelay(f.ReplayRetryDelay(attempts + 1))
		return
	}
	if derr := f.AbandonReplay(ctx, t.Seq, err); derr != nil && !errors.Is(derr, forwarder.ErrEventGone) {
		log.Error("replay failed and could not be dead-lettered; will retry", zap.Error(err), zap.NamedError("dead_letter_error", derr))
		_ = m.NakWithDelay(replayRetryIdle)
		return
	}
	log.Error("replay failed after max_attempts; dead-lettered again", zap.Error(err))
	jobs.get(t.Job).count(forwarder.StatusFailed)
	_ = m.Term()
}

// enqueueReplay puts one replay in WEBHOOKS_REPLAY and waits for the
// store's acknowledgement. msgID deduplicates a repeated request.
func enqueueReplay(ctx context.Context, e *engine, dest string, t replayTask, msgID string) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(replaySubjectRoot + "." + dest)
	msg.Data = data
	ack, err := e.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(replayStream))
	if err == nil && !ack.Duplicate {
		countReplay(dest, strings.HasPrefix(msgID, "redrive:"))
	}
	return err
}

// ReplayQueued answers a replay of one event.
type ReplayQueued struct {
	EventID   string `json:"id"`
	StreamSeq uint64 `json:"stream_seq"`
	// Destinations are where the event is queued for delivery again.
	Destinations []string `json:"destinations"`
	Status       string   `json:"status"`
}

// replayEvent queues the stored event id for delivery again to dest, or
// to every running destination it matches when dest is "".
func (a *App) replayEvent(ctx context.Context, id, dest string) (*ReplayQueued, error) {
	e, err := a.eventLogEngine()
	if err != nil {
		return nil, err
	}
	if dest != "" && a.forwarder(dest) == nil {
		return nil, errNotFound("no destination %q in the running config; replays go to configured destinations only (GET /webhooks/destinations)", dest)
	}
	m, err := a.lookupEvent(ctx, e, id)
	if err != nil {
		return nil, err
	}
	s, _ := a.summary(m, dest)
	if len(s.Status) == 0 {
		if dest != "" {
			return nil, apiError(http.StatusConflict, "event %q (subject %s) does not match destination %q's subjects", id, s.Subject, dest)
		}
		return nil, apiError(http.StatusConflict, "event %q (subject %s) matches no running destination", id, s.Subject)
	}
	if err := a.dropFiltered(m, s.Status, dest); err != nil {
		return nil, err
	}
	out := &ReplayQueued{EventID: s.ID, StreamSeq: s.StreamSeq, Status: "queued"}
	stamp := time.Now().UnixNano()
	for d := range s.Status {
		t := replayTask{Seq: s.StreamSeq, EventID: s.ID}
		if err := enqueueReplay(ctx, e, d, t, fmt.Sprintf("replay:%s:%d:%d", d, s.StreamSeq, stamp)); err != nil {
			return nil, apiError(http.StatusServiceUnavailable, "queue replay of %q to %q: %v; try again", id, d, err)
		}
		out.Destinations = append(out.Destinations, d)
	}
	slices.Sort(out.Destinations)
	return out, nil
}

// dropFiltered removes from dests the destinations whose filter rejects
// the stored event m. It answers 409 when none is left: a replay delivers
// only what the destination would take fresh.
func (a *App) dropFiltered(m *nats.Msg, dests map[string]forwarder.Status, only string) error {
	ev, err := event.Decode(&nats.Msg{Subject: subjectOf(m), Header: m.Header, Data: m.Data})
	if err != nil {
		return apiError(http.StatusConflict, "stored event cannot be decoded for replay: %v", err)
	}
	for d := range dests {
		if f := a.forwarder(d); f != nil && !f.Accepts(ev) {
			delete(dests, d)
		}
	}
	switch {
	case len(dests) > 0:
		return nil
	case only != "":
		return apiError(http.StatusConflict, "the destination's filter rejects this event: %q does not deliver event %q (its filter decides on replay too)", only, ev.ID)
	default:
		return apiError(http.StatusConflict, "the destination's filter rejects this event at every destination it matches; nothing to replay for %q", ev.ID)
	}
}

// ReplayJob is a bulk replay or redrive running in the background. The
// counts are of (event, destination) deliveries, except Matched, which
// counts events (replay) or dead letters (redrive).
type ReplayJob struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // replay or redrive
	// Filter is what the job was asked for.
	Filter EventFilter `json:"filter"`
	// Matched is how many events or dead letters matched when the job
	// started; Queued how many deliveries it queued so far.
	Matched   int `json:"matched"`
	Queued    int `json:"queued"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	// Skipped counts deliveries not made because the destination's filter
	// rejects the event.
	Skipped int `json:"skipped"`
	// State is queuing, running (all queued, deliveries outstanding) or
	// done; Error says why queuing stopped early.
	State      string     `json:"state"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// job is the live state behind a ReplayJob.
type job struct {
	mu sync.Mutex
	v  ReplayJob
	// ended is when the registry first saw the job done or failed; zero
	// before. Guarded by the registry's mu.
	ended     time.Time
	delivered atomic.Int64
	failed    atomic.Int64
	skipped   atomic.Int64
	queuedAll atomic.Bool
}

func (j *job) count(st forwarder.Status) {
	if j == nil {
		return
	}
	if st == forwarder.StatusDelivered {
		j.delivered.Add(1)
	} else {
		j.failed.Add(1)
	}
}

// skip counts a delivery the destination's filter rejects.
func (j *job) skip() {
	if j != nil {
		j.skipped.Add(1)
	}
}

func (j *job) snapshot() ReplayJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := j.v
	v.Delivered, v.Failed, v.Skipped = int(j.delivered.Load()), int(j.failed.Load()), int(j.skipped.Load())
	switch {
	case v.Error != "" || !j.queuedAll.Load():
		if v.Error != "" {
			v.State = "failed"
		} else {
			v.State = "queuing"
		}
	case v.Delivered+v.Failed+v.Skipped >= v.Queued:
		v.State = "done"
	default:
		v.State = "running"
	}
	return v
}

// A finished (done or failed) job is kept jobKeep after it is first seen
// finished, so its outcome can still be read; the registry holds at most
// maxJobs, the first finished jobs making room. An unfinished job is
// never dropped (its counts would go nowhere): while maxJobs are
// unfinished, a new bulk job is refused with a 429 and a Retry-After of
// jobRetryAfter. The registry is pruned as each job is added.
const (
	jobKeep       = time.Hour
	maxJobs       = 100
	jobRetryAfter = time.Minute
)

// jobRegistry holds the jobs of this process, shared by the apps of
// successive configs: a job outlives the reload that its replays wait
// through. Jobs are not kept across a restart; their queued deliveries
// are.
type jobRegistry struct {
	mu sync.Mutex
	m  map[string]*job
}

var jobs = &jobRegistry{m: map[string]*job{}}

// add registers a new job, or fails with a 429 when maxJobs jobs are
// unfinished.
func (r *jobRegistry) add(kind string, f EventFilter, matched int) (*job, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	now := time.Now()
	j := &job{v: ReplayJob{ID: kind + "_" + hex.EncodeToString(b[:]), Kind: kind, Filter: f, Matched: matched, StartedAt: now.UTC()}}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.prune(now, maxJobs-1) {
		return nil, tooManyJobs(len(r.m))
	}
	r.m[j.v.ID] = j
	return j, nil
}

// full reports whether a new job would be refused now: every one of
// maxJobs kept jobs is unfinished. A cheap check before a bulk job's
// matching; add decides.
func (r *jobRegistry) full() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.prune(time.Now(), maxJobs-1) {
		return nil
	}
	return tooManyJobs(len(r.m))
}

// tooManyJobs is the 429 refusing a bulk job while n jobs are
// unfinished; fromBody adds the Retry-After.
func tooManyJobs(n int) error {
	return apiError(http.StatusTooManyRequests, "%d bulk jobs are still queuing or running, the most kept at once; "+
		"retry once one has finished (GET /webhooks/replay/<job> shows each one's state)", n)
}

// prune drops the jobs finished more than jobKeep before now, then, while
// more than keep are left, the job that finished first. It reports
// whether at most keep are left: false when more than keep are
// unfinished, which it never drops. The caller holds r.mu.
func (r *jobRegistry) prune(now time.Time, keep int) bool {
	for id, j := range r.m {
		if st := j.snapshot().State; st != "done" && st != "failed" {
			continue
		}
		if j.ended.IsZero() {
			j.ended = now
		}
		if now.Sub(j.ended) > jobKeep {
			delete(r.m, id)
		}
	}
	for len(r.m) > keep {
		id := r.firstEnded()
		if id == "" {
			return false
		}
		delete(r.m, id)
	}
	return true
}

// firstEnded returns the id of the finished job that ended first (the
// one started first among those seen ended at once), "" when none has
// finished. The caller holds r.mu.
func (r *jobRegistry) firstEnded() string {
	var id string
	var pick *job
	for k, j := range r.m {
		switch {
		case j.ended.IsZero():
		case pick == nil, j.ended.Before(pick.ended),
			j.ended.Equal(pick.ended) && j.v.StartedAt.Before(pick.v.StartedAt):
			id, pick = k, j
		}
	}
	return id
}

func (r *jobRegistry) get(id string) *job {
	if id == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// replayJob returns a job's progress.
func (a *App) replayJob(id string) (*ReplayJob, error) {
	j := jobs.get(id)
	if j == nil {
		return nil, errNotFound("no replay job %q in this process: a job is kept at least an hour after it finished (at most %d jobs), and not across a restart", id, maxJobs)
	}
	v := j.snapshot()
	return &v, nil
}

// matchAll collects every event matching f, newest first, as (sequence,
// id, destinations). Used by bulk replay, which needs the exact count.
func (a *App) matchAll(ctx context.Context, f EventFilter) ([]EventSummary, error) {
	var all []EventSummary
	f.Limit = maxPageLimit
	for {
		p, err := a.listEvents(ctx, f)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Events...)
		if p.NextCursor == "" {
			return all, nil
		}
		f.Cursor = p.NextCursor
	}
}

// startReplay starts a bulk replay of every event matching f to the
// destinations each matches (only f.Destination when set) and returns the
// job, whose Matched is the exact number of events.
func (a *App) startReplay(ctx context.Context, f EventFilter) (*ReplayJob, error) {
	if err := refuseUnapplied("a bulk replay takes source, version, type, status, destination, since and until; not q or cursor", f.Q, f.Cursor); err != nil {
		return nil, err
	}
	e, err := a.eventLogEngine()
	if err != nil {
		return nil, err
	}
	if err := jobs.full(); err != nil {
		return nil, err
	}
	matches, err := a.matchAll(ctx, f)
	if err != nil {
		return nil, err
	}
	j, err := jobs.add("replay", f, len(matches))
	if err != nil {
		return nil, err
	}
	go a.queueJob(j, func(ctx context.Context, i int) error {
		s := matches[i]
		for d, st := range s.Status {
			if f.Status != "" && string(st) != f.Status && f.Destination == "" {
				continue // replay where the status matched
			}
			t := replayTask{Seq: s.StreamSeq, EventID: s.ID, Job: j.v.ID}
			if err := enqueueReplay(ctx, e, d, t, fmt.Sprintf("replay:%s:%s:%d", j.v.ID, d, s.StreamSeq)); err != nil {
				return err
			}
			j.mu.Lock()
			j.v.Queued++
			j.mu.Unlock()
		}
		return nil
	}, len(matches))
	v := j.snapshot()
	return &v, nil
}

// refuseUnapplied is the 400 of a bulk job (msg says what it takes)
// given a filter field it does not apply (given holds their values):
// ignoring one would act on every event or dead letter the other fields
// match.
func refuseUnapplied(msg string, given ...string) error {
	for _, v := range given {
		if v != "" {
			return apiError(http.StatusBadRequest, "%s", msg)
		}
	}
	return nil
}

// redriveAll starts a background redrive of every dead letter matching f
// (destination, source, version, type, since, until, q). status and
// cursor are refused (refuseUnapplied): the walk of the dead letters
// applies neither.
func (a *App) redriveAll(ctx context.Context, f EventFilter) (*ReplayJob, error) {
	if err := refuseUnapplied("a dead-letter redrive takes destination, source, version, type, since, until and q; not status or cursor", f.Status, f.Cursor); err != nil {
		return nil, err
	}
	e, err := a.engineFor(&f)
	if err != nil {
		return nil, err
	}
	if err := jobs.full(); err != nil {
		return nil, err
	}
	var recs []*nats.Msg
	f.Limit = maxPageLimit
	if _, err := a.walkDLQ(ctx, e, f, func(m *nats.Msg) bool {
		recs = append(recs, m)
		return true
	}); err != nil {
		return nil, err
	}
	j, err := jobs.add("redrive", f, len(recs))
	if err != nil {
		return nil, err
	}
	groups := byEventAndDestination(recs)
	go a.queueJob(j, func(ctx context.Context, i int) error {
		g := groups[i]
		if _, err := a.redriveRecord(ctx, e, g[0], j.v.ID); err != nil {
			return err
		}
		// The event goes once to the destination: its other dead letters
		// there are settled by the same redrive.
		for _, m := range g[1:] {
			if err := deleteDLQMsg(ctx, e, seqOf(m)); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				a.logger.Warn("duplicate dead letter could not be removed", zap.Uint64("id", seqOf(m)), zap.Error(err))
			}
		}
		j.mu.Lock()
		j.v.Queued++
		j.mu.Unlock()
		return nil
	}, len(groups))
	v := j.snapshot()
	return &v, nil
}

// byEventAndDestination groups dead letters by (stored event,
// destination), in their order: an event dead-lettered several times at
// one destination is redriven once.
func byEventAndDestination(recs []*nats.Msg) [][]*nats.Msg {
	type key struct {
		seq  uint64
		dest string
	}
	at := map[key]int{}
	var out [][]*nats.Msg
	for _, m := range recs {
		dl := deadLetter(m)
		k := key{dl.StreamSeq, dl.Destination}
		if i, ok := at[k]; ok {
			out[i] = append(out[i], m)
			continue
		}
		at[k] = len(out)
		out = append(out, []*nats.Msg{m})
	}
	return out
}

// queueJob runs queue for each of n items, stopping at the first error.
func (a *App) queueJob(j *job, queue func(context.Context, int) error, n int) {
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		err := queue(ctx, i)
		cancel()
		if err != nil {
			j.mu.Lock()
			j.v.Error = err.Error()
			j.mu.Unlock()
			a.logger.Error("replay job stopped", zap.String("job", j.v.ID), zap.Error(err))
			break
		}
	}
	now := time.Now().UTC()
	j.mu.Lock()
	j.v.FinishedAt = &now
	j.mu.Unlock()
	j.queuedAll.Store(true)
}
