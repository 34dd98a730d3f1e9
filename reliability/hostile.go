package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// hostileCase is one row of the attack table: raw bytes sent to a live
// gateway and the answers allowed. Status 0 means the connection closed
// without an answer.
type hostileCase struct {
	name string
	// raw returns the request bytes for event id (sent as X-Id where the
	// request carries one).
	raw func(id string) string
	// wait is how long the client stalls after sending, before reading
	// (slow clients).
	wait time.Duration
	want []int
	// stored: the event must be stored (a control row); otherwise it must
	// not be, unless mayStore. A "<id>-smuggled" event must never be.
	stored, mayStore bool
}

// hostileSources are the sources the attack table aims at: small limits
// so bodies at and over them are cheap.
const hostileSources = `		source small {
			verify none
			id_header X-Id
			max_body 1KiB
		}
		source limited {
			verify none
			id_header X-Id
			rate 1/h burst 1
		}
		source gz {
			verify none
			id_header X-Id
			max_body 1KiB
			accept_encoding gzip
			max_ratio 10
		}`

// post builds a raw HTTP/1.1 POST; extra is more header lines ("K: v\r\n").
func rawPost(path, id, extra, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\nX-Id: %s\r\nContent-Length: %d\r\n%s\r\n%s", path, id, len(body), extra, body)
}

func rawPostNoCL(path, id, extra, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\nX-Id: %s\r\n%s\r\n%s", path, id, extra, body)
}

// gzipBomb is a gzip body of 1 MiB of zeros.
func gzipBomb() string { return gzipString(string(make([]byte, 1<<20))) }

// gzipString compresses s.
func gzipString(s string) string {
	var b bytes.Buffer
	w := gzipWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// wordy returns n bytes of varied text that gzip shrinks by well under
// the gz source's max_ratio.
func wordy(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%x", uint32(i)*2654435761)
	}
	return b.String()[:n]
}

// hostileTable is the attack table of docs/RELIABILITY.md.
func hostileTable() []hostileCase {
	limit := strings.Repeat("a", 1024)
	return []hostileCase{
		{name: "control: body exactly at max_body", raw: func(id string) string { return rawPost("/webhooks/v1/small", id, "", limit) }, want: []int{200}, stored: true},
		{name: "control: invalid UTF-8 body", raw: func(id string) string { return rawPost("/webhooks/v1/demo", id, "", "\xff\xfe{\xc3") }, want: []int{200}, stored: true},
		{name: "body one byte over max_body", raw: func(id string) string { return rawPost("/webhooks/v1/small", id, "", limit+"a") }, want: []int{413}},
		{name: "chunked body over max_body", raw: func(id string) string {
			return rawPostNoCL("/webhooks/v1/small", id, "Transfer-Encoding: chunked\r\n", fmt.Sprintf("401\r\n%sa\r\n0\r\n\r\n", limit))
		}, want: []int{413}},
		{name: "declared Content-Length of 10 GB, body never sent", raw: func(id string) string {
			return rawPostNoCL("/webhooks/v1/demo", id, "Content-Length: 10000000000\r\n", "{}")
		}, want: []int{413}},
		{name: "Expect: 100-continue over max_body", raw: func(id string) string {
			return rawPostNoCL("/webhooks/v1/small", id, "Content-Length: 5000\r\nExpect: 100-continue\r\n", "")
		}, want: []int{413}},
		{name: "gzip bomb (1 MiB of zeros, ratio cap 10)", raw: func(id string) string {
			return rawPost("/webhooks/v1/gz", id, "Content-Encoding: gzip\r\n", gzipBomb())
		}, want: []int{413}},
		{name: "control: gzip body inflating to exactly max_body", raw: func(id string) string {
			return rawPost("/webhooks/v1/gz", id, "Content-Encoding: gzip\r\n", gzipString(wordy(1024)))
		}, want: []int{200}, stored: true},
		{name: "gzip body inflating to one byte over max_body", raw: func(id string) string {
			return rawPost("/webhooks/v1/gz", id, "Content-Encoding: gzip\r\n", gzipString(wordy(1025)))
		}, want: []int{413}},
		{name: "control: first request within the source's rate", raw: func(id string) string { return rawPost("/webhooks/v1/limited", id, "", "{}") }, want: []int{200}, stored: true},
		{name: "second request over the source's rate (1/h)", raw: func(id string) string { return rawPost("/webhooks/v1/limited", id, "", "{}") }, want: []int{429}},
		{name: "Content-Encoding the source does not accept", raw: func(id string) string {
			return rawPost("/webhooks/v1/demo", id, "Content-Encoding: gzip\r\n", "xx")
		}, want: []int{415}},
		{name: "malformed request line", raw: func(string) string { return "POST\r\n\r\n" }, want: []int{400}},
		{name: "binary garbage", raw: func(string) string { return "\x00\x01\x02\x03\xff\r\n\r\n" }, want: []int{400}},
		{name: "no Host header", raw: func(id string) string {
			return fmt.Sprintf("POST /webhooks/v1/demo HTTP/1.1\r\nX-Id: %s\r\nContent-Length: 2\r\n\r\n{}", id)
		}, want: []int{400}},
		{name: "header flood: 20,000 headers", raw: func(id string) string {
			var b strings.Builder
			for i := range 20000 {
				fmt.Fprintf(&b, "X-F%d: v\r\n", i)
			}
			return rawPost("/webhooks/v1/demo", id, b.String(), "{}")
		}, want: []int{431}},
		{name: "one 2 MiB header", raw: func(id string) string {
			return rawPost("/webhooks/v1/demo", id, "X-Big: "+strings.Repeat("b", 2<<20)+"\r\n", "{}")
		}, want: []int{431}},
		{name: "2 MiB URL", raw: func(id string) string {
			return rawPost("/webhooks/v1/demo?"+strings.Repeat("q", 2<<20), id, "", "{}")
		}, want: []int{414, 431}},
		{name: "NUL in a header value", raw: func(id string) string { return rawPost("/webhooks/v1/demo", id, "X-Type: a\x00b\r\n", "{}") }, want: []int{400}},
		// RFC 9112 §6.1: a server may reject both headers or use the
		// chunked framing and close the connection after answering; the
		// request hidden behind the chunked end must never be served.
		{name: "smuggling: Content-Length and Transfer-Encoding", raw: func(id string) string {
			inner := rawPost("/webhooks/v1/demo", id+"-smuggled", "", "{}")
			body := "0\r\n\r\n" + inner
			return rawPostNoCL("/webhooks/v1/demo", id, fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: chunked\r\n", len(body)), body)
		}, want: []int{200, 400}, mayStore: true},
		{name: "smuggling: two different Content-Lengths", raw: func(id string) string {
			return rawPostNoCL("/webhooks/v1/demo", id, "Content-Length: 2\r\nContent-Length: 3\r\n", "{}x")
		}, want: []int{400}},
		{name: "smuggling: Transfer-Encoding gzip, chunked", raw: func(id string) string {
			return rawPostNoCL("/webhooks/v1/demo", id, "Transfer-Encoding: gzip, chunked\r\n", "2\r\n{}\r\n0\r\n\r\n")
		}, want: []int{501}},
		{name: "smuggling: bad chunk size", raw: func(id string) string {
			return rawPostNoCL("/webhooks/v1/demo", id, "Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n")
		}, want: []int{400}},
		{name: "path: %2e%2e", raw: func(id string) string { return rawPost("/webhooks/v1/%2e%2e/demo", id, "", "{}") }, want: []int{400, 404}},
		{name: "path: ..", raw: func(id string) string { return rawPost("/webhooks/v1/x/../demo", id, "", "{}") }, want: []int{400, 404}},
		{name: "path: //", raw: func(id string) string { return rawPost("/webhooks//v1/demo", id, "", "{}") }, want: []int{400, 404}},
		{name: "path: encoded slash", raw: func(id string) string { return rawPost("/webhooks/v1%2fdemo", id, "", "{}") }, want: []int{400, 404}},
		{name: "path: trailing segment", raw: func(id string) string { return rawPost("/webhooks/v1/demo/x", id, "", "{}") }, want: []int{404}},
		{name: "path: subject wildcard >", raw: func(id string) string { return rawPost("/webhooks/v1/%3E", id, "", "{}") }, want: []int{404}},
		{name: "path: subject wildcard *", raw: func(id string) string { return rawPost("/webhooks/v1/*", id, "", "{}") }, want: []int{404}},
		{name: "path: dot in source", raw: func(id string) string { return rawPost("/webhooks/v1/demo.x", id, "", "{}") }, want: []int{404}},
		{name: "path: upper case source", raw: func(id string) string { return rawPost("/webhooks/v1/DEMO", id, "", "{}") }, want: []int{404}},
		{name: "unknown version", raw: func(id string) string { return rawPost("/webhooks/v9/demo", id, "", "{}") }, want: []int{404}},
		{name: "GET", raw: func(id string) string {
			return fmt.Sprintf("GET /webhooks/v1/demo HTTP/1.1\r\nHost: gw\r\nX-Id: %s\r\n\r\n", id)
		}, want: []int{405}},
		{name: "slow headers (slowloris)", raw: func(id string) string {
			return fmt.Sprintf("POST /webhooks/v1/demo HTTP/1.1\r\nHost: gw\r\nX-Id: %s\r\n", id)
		}, wait: 3 * time.Second, want: []int{0, 408}},
		{name: "slow body (10 of 100 bytes)", raw: func(id string) string {
			return rawPostNoCL("/webhooks/v1/demo", id, "Content-Length: 100\r\n", `{"a":"12"`)
		}, wait: 4 * time.Second, want: []int{0, 408}},
	}
}

// hostileRow is one row's result.
type hostileRow struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Status int    `json:"status"`
	Want   []int  `json:"want"`
	Stored bool   `json:"stored"`
}

// hostileResult is the attack table's outcome.
type hostileResult struct {
	Rows []hostileRow `json:"rows"`
	// Failures lists rows whose answer or storage was wrong, and crashes.
	Failures []string `json:"failures,omitempty"`
}

// runHostile sends the attack table to a live gateway and checks each
// answer, that nothing rejected is stored, and that the gateway neither
// crashed nor panicked.
func runHostile(bin, dir string, logf func(string, ...any)) (*hostileResult, error) {
	cfg := newGWConfig(filepath.Join(dir, "hostile"))
	cfg.Sources = hostileSources
	cfg.Timeouts = "read_header 1s\n\t\t\tread_body 2s"
	g, err := startReady(bin, cfg, 60*time.Second, newRecorder())
	if err != nil {
		return nil, err
	}
	defer g.stop()
	res := &hostileResult{}
	for i, c := range hostileTable() {
		id := fmt.Sprintf("hostile-%d", i)
		var linger time.Duration
		if c.mayStore {
			linger = time.Second // time for a smuggled request to be served
		}
		status, err := sendRaw(cfg.HTTP, c.raw(id), c.wait, linger)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		res.Rows = append(res.Rows, hostileRow{Name: c.name, ID: id, Status: status, Want: c.want})
		if !slices.Contains(c.want, status) {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: answered %d, want one of %v", c.name, status, c.want))
		}
		if !g.alive() {
			return nil, fmt.Errorf("%s: the gateway died: %v; log: %s", c.name, g.err, g.tail())
		}
	}
	logf("%d hostile requests sent; the gateway is alive", len(res.Rows))
	stored, err := storedIDs(cfg.NATS, cfg.Store, "WEBHOOKS")
	if err != nil {
		return nil, err
	}
	table := hostileTable()
	for i := range res.Rows {
		row := &res.Rows[i]
		for eid := range stored {
			if strings.HasSuffix(eid, ":"+row.ID) {
				row.Stored = true
			}
			if strings.HasSuffix(eid, ":"+row.ID+"-smuggled") {
				// Go frames by Transfer-Encoding and drops
				// Content-Length; the handler closes the connection
				// after a chunked request (RFC 9112 §6.1), so a request
				// hidden behind the chunked end is never served.
				res.Failures = append(res.Failures, fmt.Sprintf("%s: the request hidden behind the chunked end was served and stored: a chunked request must close the connection (RFC 9112 §6.1)", row.Name))
			}
		}
		if row.Stored != table[i].stored && !table[i].mayStore {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: stored=%v, want %v", row.Name, row.Stored, table[i].stored))
		}
	}
	if log, _ := os.ReadFile(filepath.Join(cfg.Dir, "gateway.log")); bytes.Contains(log, []byte("panic")) {
		res.Failures = append(res.Failures, "the gateway's log shows a panic")
	}
	return res, nil
}

// sendRaw writes raw to addr, waits, and returns the answer's status, or 0
// when the connection closed without one. It keeps the connection open
// linger after the answer, reading whatever else the server sends.
func sendRaw(addr, raw string, wait, linger time.Duration) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// A server may answer and close before reading everything (413, 431):
	// a failed write is then no error of the test.
	// The site matches its host: the table says "gw" for it.
	raw = strings.ReplaceAll(raw, "Host: gw\r\n", "Host: "+addr+"\r\n")
	_, _ = conn.Write([]byte(raw))
	if wait > 0 {
		time.Sleep(wait)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if linger > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(linger))
		_, _ = io.Copy(io.Discard, br)
	}
	return resp.StatusCode, nil
}
