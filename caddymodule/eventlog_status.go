package caddymodule

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/hookgate/hookgate/event"
	"github.com/hookgate/hookgate/forwarder"
)

// GatewayStatus is the answer of GET /webhooks/status.
type GatewayStatus struct {
	Store        StoreStatus         `json:"store"`
	Sources      []SourceStatus      `json:"sources"`
	Destinations []DestinationHealth `json:"destinations"`
	// Cluster is the cluster's peers, stream leader and lag; absent on a
	// single node (cluster_status.go).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// StoreStatus is the event store's health.
type StoreStatus struct {
	Up bool `json:"up"`
	// Sync is "always" or the fsync interval ("1s").
	Sync string `json:"sync"`
	// Events, Bytes and MaxBytes are the WEBHOOKS stream's; at MaxBytes
	// new events are refused with 503.
	Events      uint64     `json:"events"`
	Bytes       uint64     `json:"bytes"`
	MaxBytes    int64      `json:"max_bytes"`
	OldestEvent *time.Time `json:"oldest_event"`
	DeadLetters uint64     `json:"dead_letters"`
	Error       string     `json:"error,omitempty"`
}

// SourceStatus counts a source's requests of the last minute by outcome
// (accepted, duplicate, handshake, or the problem type of a rejection).
type SourceStatus struct {
	Source   string         `json:"source"`
	Requests int            `json:"requests"`
	Outcomes map[string]int `json:"outcomes"`
}

// DestinationHealth is a destination's backlog and health.
type DestinationHealth struct {
	Name string `json:"name"`
	// Pending counts events not yet handed to the forwarder; InFlight
	// those handed out and not yet settled (in an attempt or waiting out
	// a retry delay).
	Pending  uint64 `json:"pending"`
	InFlight int    `json:"in_flight"`
	// OldestPendingAge is the age of the oldest unsettled event ("3m2s"),
	// "" when there is none.
	OldestPendingAge string `json:"oldest_pending_age,omitempty"`
	// Breaker is the circuit: closed, open or half-open.
	Breaker string `json:"breaker"`
	Paused  bool   `json:"paused"`
	// LastError is the error of the destination's newest failed attempt
	// among its latest ones.
	LastError string `json:"last_error,omitempty"`
	Error     string `json:"error,omitempty"`
}

// status reports the store, the sources and the destinations.
func (a *App) status(ctx context.Context) (*GatewayStatus, error) {
	st := &GatewayStatus{Sources: lastMinute(), Destinations: []DestinationHealth{}}
	st.Store.Sync = "always"
	if !a.ecfg.SyncAlways {
		st.Store.Sync = a.ecfg.SyncInterval.String()
	}
	e := a.runningEngine()
	if e == nil {
		st.Store.Error = "the event store is not running"
		return st, nil
	}
	info, err := eventStreamInfo(ctx, e)
	if err != nil {
		st.Store.Error = err.Error()
	} else {
		st.Store.Up = true
		st.Store.Events, st.Store.Bytes, st.Store.MaxBytes = info.State.Msgs, info.State.Bytes, info.Config.MaxBytes
		if info.State.Msgs > 0 {
			t := info.State.FirstTime
			st.Store.OldestEvent = &t
		}
	}
	if s, err := e.js.Stream(ctx, event.DLQStreamName); err == nil {
		st.Store.DeadLetters = s.CachedInfo().State.Msgs
	}
	st.Cluster = a.clusterStatusOf(info, err) // the same read
	for _, f := range a.runningForwarders() {
		st.Destinations = append(st.Destinations, destinationHealth(ctx, e, f))
	}
	return st, nil
}

func destinationHealth(ctx context.Context, e *engine, f *forwarder.Forwarder) DestinationHealth {
	h := DestinationHealth{Name: f.Name()}
	ds, err := f.Status(ctx)
	if err != nil {
		h.Error = err.Error()
		return h
	}
	h.Pending, h.InFlight, h.Breaker, h.Paused = ds.Pending, ds.AckPending, ds.Circuit, ds.PausedUntil != nil
	if t, ok := oldestPending(ctx, e, f, ds); ok {
		h.OldestPendingAge = time.Since(t).Round(time.Second).String()
	}
	h.LastError = lastAttemptError(ctx, e, f.Name())
	return h
}

// oldestPending returns when the destination's oldest unsettled event was
// stored: the first match after its consumer's ack floor. ok is false with
// no backlog (or when JetStream does not answer).
func oldestPending(ctx context.Context, e *engine, f *forwarder.Forwarder, ds *forwarder.DestinationStatus) (time.Time, bool) {
	if ds.Pending+uint64(ds.AckPending) == 0 {
		return time.Time{}, false
	}
	cons, err := e.js.Consumer(ctx, event.StreamName, ds.Consumer)
	if err != nil {
		return time.Time{}, false
	}
	return firstMatchAfter(ctx, e, cons.CachedInfo().AckFloor.Stream+1, f.Config().Subjects)
}

// firstMatchAfter returns the store time of the first event at or after
// seq matching any of subjects.
func firstMatchAfter(ctx context.Context, e *engine, seq uint64, subjects []string) (time.Time, bool) {
	if len(subjects) == 0 {
		subjects = []string{event.SubjectRoot + ".>"}
	}
	var first time.Time
	for _, s := range subjects {
		msgs, err := forwarder.DirectBatch(ctx, e.nc, event.StreamName, forwarder.DirectRequest{Seq: seq, NextBySubject: s, Batch: 1, MaxBytes: 1})
		if err != nil || len(msgs) == 0 {
			continue
		}
		if t := storedAt(msgs[0]); first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first, !first.IsZero()
}

// lastAttemptError reads the destination's newest attempts and returns
// the newest error among them.
func lastAttemptError(ctx context.Context, e *engine, dest string) string {
	r, _, err := streamRange(ctx, e.js, forwarder.AttemptStream, time.Time{}, time.Time{})
	if err != nil || r.hi <= r.lo {
		return ""
	}
	var out string
	_ = walkBack(ctx, e.nc, forwarder.AttemptStream, forwarder.AttemptSubjects(dest), seqRange{max(r.lo, r.hi-min(r.hi, 5000)), r.hi}, 20, func(window []*nats.Msg) bool {
		for _, m := range window {
			var a forwarder.Attempt
			if json.Unmarshal(m.Data, &a) == nil && a.Error != "" {
				out = a.Error
				return false
			}
		}
		return false
	})
	return out
}

// The requests of the last minute come from the caddy_webhooks_requests_total
// counters, sampled every few seconds.
const sampleEvery = 5 * time.Second

var sampler struct {
	once    sync.Once
	mu      sync.Mutex
	samples []requestSample
}

type requestSample struct {
	at     time.Time
	counts map[[2]string]float64 // source, outcome
}

// startSampler starts sampling the request counters (once per process).
func startSampler() {
	sampler.once.Do(func() {
		takeSample()
		go func() {
			for range time.Tick(sampleEvery) {
				takeSample()
			}
		}()
	})
}

func takeSample() {
	s := requestSample{at: time.Now(), counts: readRequests()}
	sampler.mu.Lock()
	defer sampler.mu.Unlock()
	sampler.samples = append(sampler.samples, s)
	if n := len(sampler.samples); n > int(time.Minute/sampleEvery)+2 {
		sampler.samples = sampler.samples[n-int(time.Minute/sampleEvery)-2:]
	}
}

func readRequests() map[[2]string]float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { metrics.requests.Collect(ch); close(ch) }()
	out := map[[2]string]float64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || d.Counter == nil {
			continue
		}
		var src, outcome string
		for _, l := range d.Label {
			switch l.GetName() {
			case "source":
				src = l.GetValue()
			case "outcome":
				outcome = l.GetValue()
			}
		}
		if src != "" {
			out[[2]string{src, outcome}] += d.Counter.GetValue()
		}
	}
	return out
}

// lastMinute returns each source's requests by outcome over the last
// minute (or since the gateway started, when that is shorter).
func lastMinute() []SourceStatus {
	startSampler()
	now := readRequests()
	sampler.mu.Lock()
	base := map[[2]string]float64{}
	cutoff := time.Now().Add(-time.Minute)
	for _, s := range sampler.samples {
		if !s.at.Before(cutoff) {
			base = s.counts
			break
		}
	}
	sampler.mu.Unlock()
	bySource := map[string]*SourceStatus{}
	out := []SourceStatus{}
	for k, v := range now {
		n := int(v - base[k])
		if n <= 0 {
			continue
		}
		ss := bySource[k[0]]
		if ss == nil {
			ss = &SourceStatus{Source: k[0], Outcomes: map[string]int{}}
			bySource[k[0]] = ss
		}
		ss.Requests += n
		ss.Outcomes[k[1]] += n
	}
	for _, ss := range bySource {
		out = append(out, *ss)
	}
	slices.SortFunc(out, func(a, b SourceStatus) int { return strings.Compare(a.Source, b.Source) })
	return out
}
