package forwarder

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The HTTP client of a destination is fasthttp's HostClient rather than
// net/http's Transport: on the 2-core reference machine it makes the same
// loopback POSTs about 1.7 times as fast (BenchmarkHTTPClients), because a
// request is written and its response read on the caller's goroutine,
// with no per-connection read and write loops to hand off to. What it
// lacks is made up for here:
//
//   - no context: a stopping forwarder aborts attempts in flight by
//     closing their connections (connSet.abort);
//   - POST is never retried on a stale keep-alive connection: retryStale
//     sends the request once more when the destination closed the
//     connection before answering, as net/http does;
//   - HTTP/1.1 only, which is what an internal hop needs;
//   - it cannot read an answer the destination sent before it read the
//     whole body, once writing the rest failed: bodies over largeBody go
//     through net/http (newLargeClient), which can.

// maxHeaderBytes is the read buffer of a connection, which bounds the
// response headers a destination may send.
const maxHeaderBytes = 16 << 10

// idleTimeout closes a connection left idle this long. It is shorter than
// the 5s keep-alive of Node.js servers so that a request rarely meets a
// connection the destination is closing; retryStale covers the rest.
const idleTimeout = 4 * time.Second

// newClient returns the HTTP client of a destination whose URL Validate
// accepted, with its URI parsed once for every request.
func newClient(cfg Config, conns *connSet) (*fasthttp.HostClient, *fasthttp.URI, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, nil, err
	}
	isTLS := u.Scheme == "https"
	port := u.Port()
	if port == "" {
		port = "80"
		if isTLS {
			port = "443"
		}
	}
	uri := fasthttp.AcquireURI()
	if err := uri.Parse(nil, []byte(cfg.URL)); err != nil {
		return nil, nil, err
	}
	// The path is sent as configured, not cleaned.
	uri.DisablePathNormalizing = true
	c := &fasthttp.HostClient{
		Addr:      net.JoinHostPort(u.Hostname(), port),
		IsTLS:     isTLS,
		TLSConfig: cfg.TLS,
		// Workers cap the requests in flight; waiting instead of failing
		// covers a connection that is still being closed.
		MaxConns:               cfg.Concurrency,
		MaxConnWaitTimeout:     cfg.Timeout,
		MaxIdleConnDuration:    idleTimeout,
		DialTimeout:            conns.dial(min(cfg.Timeout, 10*time.Second)),
		ReadBufferSize:         maxHeaderBytes,
		MaxResponseBodySize:    drainLimit,
		DisablePathNormalizing: true,
		// Every request sets its own User-Agent.
		NoDefaultUserAgentHeader: true,
		RetryIfErr:               retryStale,
	}
	return c, uri, nil
}

// newLargeClient returns the net/http client for bodies over largeBody,
// configured like the fasthttp one: HTTP/1.1, no proxy, no redirects.
func newLargeClient(cfg Config) *http.Client {
	dial := min(cfg.Timeout, 10*time.Second)
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:    cfg.Concurrency,
		MaxConnsPerHost:        cfg.Concurrency,
		IdleConnTimeout:        idleTimeout,
		TLSHandshakeTimeout:    dial,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
		// The body is forwarded as stored; never ask for a re-encoding.
		DisableCompression: true,
	}
	if cfg.TLS != nil {
		t.TLSClientConfig = cfg.TLS.Clone()
	}
	return &http.Client{
		Transport: t,
		// A redirect from an internal service is a misconfiguration;
		// following it would send the event somewhere nobody configured.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// retryStale lets a request go once more when the destination closed the
// connection before answering: a keep-alive connection it closed while
// idle. Anything else is an attempt of its own, retried by the policy.
func retryStale(_ *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if attempts > 1 {
		return false, false
	}
	return false, errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// connSet dials a destination's connections and can close them all, which
// is how a stopping forwarder aborts the attempts still running.
type connSet struct {
	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	aborted bool
}

// errAborted is what a dial returns once the forwarder has aborted.
var errAborted = errors.New("aborted: forwarder stopping")

func newConnSet() *connSet { return &connSet{conns: make(map[*trackedConn]struct{})} }

// dial returns a fasthttp dial function whose connect timeout is at most
// limit.
func (s *connSet) dial(limit time.Duration) fasthttp.DialFuncWithTimeout {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		d := net.Dialer{Timeout: min(timeout, limit), KeepAlive: 30 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, set: s}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.aborted {
			c.Close()
			return nil, errAborted
		}
		s.conns[tc] = struct{}{}
		return tc, nil
	}
}

// abort closes every connection and refuses new ones until reset.
func (s *connSet) abort() {
	s.mu.Lock()
	s.aborted = true
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// reset lets connections be dialled again.
func (s *connSet) reset() {
	s.mu.Lock()
	s.aborted = false
	s.mu.Unlock()
}

type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.conns, c)
		c.set.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}
