package caddymodule

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hookgate/hookgate/event"
)

// ClusterStatus is the cluster part of GET /webhooks/status: who holds the
// WEBHOOKS stream and how far behind each copy is. It is absent on a
// single node without a cluster.
type ClusterStatus struct {
	// Mode is "embedded" (the gateways' own servers form the cluster) or
	// "external" (an external NATS cluster).
	Mode string `json:"mode"`
	// Name is the NATS cluster's name.
	Name string `json:"name,omitempty"`
	// Node is this gateway's server_name ("" in external mode).
	Node string `json:"node,omitempty"`
	// Replicas is the stream's configured number of copies.
	Replicas int `json:"replicas"`
	// Leader is the server that leads WEBHOOKS ("" during an election).
	Leader string `json:"leader"`
	// Peers are the servers that hold a copy of WEBHOOKS, leader first.
	Peers []ClusterPeer `json:"peers"`
	// Gateways is how many gateways announced themselves in the
	// WEBHOOKS_NODES bucket lately (this one included): the number each
	// destination's rate is divided by (cluster_nodes.go).
	Gateways int    `json:"gateways,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ClusterPeer is one copy of the WEBHOOKS stream.
type ClusterPeer struct {
	Name string `json:"name"`
	// Current is whether the copy is up to date with the leader.
	Current bool `json:"current"`
	Offline bool `json:"offline,omitempty"`
	// Lag is how many operations the copy is behind the leader.
	Lag uint64 `json:"lag"`
	// LastSeen is how long ago the leader last heard of it ("120ms").
	LastSeen string `json:"last_seen,omitempty"`
}

// clusterStatus returns the cluster part of the status, nil on a single
// node.
func (a *App) clusterStatus(ctx context.Context, e *engine) *ClusterStatus {
	return a.clusterStatusOf(eventStreamInfo(ctx, e))
}

// eventStreamInfo reads the WEBHOOKS stream's info.
func eventStreamInfo(ctx context.Context, e *engine) (*jetstream.StreamInfo, error) {
	s, err := e.js.Stream(ctx, event.StreamName)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// clusterStatusOf returns the cluster part of the status from the
// WEBHOOKS stream's info or the error reading it, nil on a single node.
// GET /webhooks/status reads the info once for its store part and this.
func (a *App) clusterStatusOf(info *jetstream.StreamInfo, err error) *ClusterStatus {
	if !a.ecfg.clustered() && !a.ecfg.external() {
		return nil
	}
	cs := &ClusterStatus{Mode: "embedded", Node: a.ecfg.ServerName, Peers: []ClusterPeer{}, Gateways: a.liveGateways()}
	if a.ecfg.external() {
		cs.Mode, cs.Node = "external", ""
	}
	if err != nil {
		cs.Error = err.Error()
		return cs
	}
	cs.Replicas = info.Config.Replicas
	if info.Cluster == nil {
		return cs
	}
	cs.Name, cs.Leader = info.Cluster.Name, info.Cluster.Leader
	if cs.Leader != "" {
		cs.Peers = append(cs.Peers, ClusterPeer{Name: cs.Leader, Current: true})
	}
	for _, p := range info.Cluster.Replicas {
		cs.Peers = append(cs.Peers, ClusterPeer{Name: p.Name, Current: p.Current, Offline: p.Offline,
			Lag: p.Lag, LastSeen: p.Active.Round(time.Millisecond).String()})
	}
	return cs
}

// Metrics of the cluster, reported at scrape time by clusterCollector.
var (
	descClusterPeers = prometheus.NewDesc("caddy_webhooks_cluster_peers",
		"Servers holding a current copy of the WEBHOOKS stream, the leader included (0 without a leader).", nil, nil)
	descStreamLeader = prometheus.NewDesc("caddy_webhooks_stream_leader",
		"1 while this gateway's embedded server leads the WEBHOOKS stream, else 0.", nil, nil)
)

// clusterCollector reports the cluster's metrics of a clustered or
// external app from the stream's info at scrape time.
type clusterCollector struct {
	app *App
	// mu keeps concurrent scrapes from piling up requests on the server.
	mu sync.Mutex
}

// Describe sends the descriptors of the cluster metrics.
func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descClusterPeers
	ch <- descStreamLeader
}

// Collect sends the cluster metrics; nothing while the store is down.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.app.runningEngine()
	if e == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	cs := c.app.clusterStatus(ctx, e)
	if cs == nil || cs.Error != "" {
		return
	}
	current := 0
	for _, p := range cs.Peers {
		if p.Current && !p.Offline {
			current++
		}
	}
	if cs.Leader == "" {
		current = 0
	}
	ch <- prometheus.MustNewConstMetric(descClusterPeers, prometheus.GaugeValue, float64(current))
	ch <- prometheus.MustNewConstMetric(descStreamLeader, prometheus.GaugeValue, boolGauge(cs.Node != "" && cs.Leader == cs.Node))
}

var _ prometheus.Collector = (*clusterCollector)(nil)
