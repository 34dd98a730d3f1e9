package forwarder

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hookgate/hookgate/internal/testcert"
)

// TestMutualTLS delivers to an https destination that trusts only a
// private CA and requires a client certificate from it: with the CA and
// the client certificate the event is delivered; without the client
// certificate the handshake fails, and without the CA the server is not
// trusted; each failure is a retryable attempt saying why.
func TestMutualTLS(t *testing.T) {
	certs := testcert.New(t)
	peers := make(chan string, 8)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers <- r.TLS.PeerCertificates[0].Subject.CommonName
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.TLS = certs.ServerConfig(true)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if !strings.HasPrefix(srv.URL, "https://127.0.0.1:") {
		t.Fatalf("server URL %s", srv.URL)
	}

	e := newEnv(t)
	for _, tc := range []struct {
		name    string
		tls     *tls.Config
		wantErr string // "" when it must be delivered
	}{
		{"mtls", &tls.Config{RootCAs: certs.CAPool, Certificates: []tls.Certificate{certs.Client}}, ""},
		{"nocert", &tls.Config{RootCAs: certs.CAPool}, "closed the connection before answering"},
		{"noca", nil, "certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fast(tc.name, srv.URL+"/hooks")
			cfg.Subjects = []string{"webhooks.v1." + tc.name + ".>"}
			cfg.TLS = tc.tls
			cfg.MaxAttempts = 1
			e.start(cfg)
			id := tc.name + ":1"
			e.publish(id, tc.name, "t", []byte(`{}`), nil)
			if tc.wantErr == "" {
				// A large body too, which takes the net/http path.
				e.publish(tc.name+":2", tc.name, "t", bytes.Repeat([]byte("x"), 2*largeBody), nil)
				for _, id := range []string{id, tc.name + ":2"} {
					waitState(t, e, id, tc.name, StatusDelivered)
					if cn := <-peers; cn != testcert.ClientName {
						t.Errorf("%s: client certificate %q, want %q", id, cn, testcert.ClientName)
					}
				}
				return
			}
			st := waitState(t, e, id, tc.name, StatusFailed)
			if !strings.Contains(st.LastError, tc.wantErr) || st.LastStatusCode != 0 {
				t.Errorf("last error %q (status %d), want it to say %q", st.LastError, st.LastStatusCode, tc.wantErr)
			}
		})
	}
	if len(peers) != 0 {
		t.Errorf("%d requests reached the server through a failed handshake", len(peers))
	}
}

func TestTLSNeedsHTTPS(t *testing.T) {
	cfg := fast("plain", "http://127.0.0.1:1/x")
	cfg.TLS = &tls.Config{}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "need an https:// URL") {
		t.Fatalf("Validate = %v", err)
	}
}
