package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookgate/hookgate/event"
)

// TestNATSListener: an internal service connects to the embedded server's
// client listener — over TLS, with a password — and reads a delivered event
// with its own durable consumer; wrong or missing credentials and plain
// TCP are refused.
func TestNATSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	listen := freeAddr(t)
	g := startGateway(t, gatewayConfig{Global: "\t\tlisten " + listen + "\n\t\tuser billing\n\t\tpassword {env.HOOKGATE_TEST_NATS_PASSWORD}\n\t\ttls " + certFile + " " + keyFile})
	_ = g

	tlsOpt := nats.Secure(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if nc, err := nats.Connect("nats://"+listen, tlsOpt, nats.UserInfo("billing", "wrong"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a wrong password was accepted")
	}
	if nc, err := nats.Connect("nats://"+listen, nats.UserInfo("billing", testNATSPassword), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a plain-text client was accepted by a TLS listener")
	}
	nc, err := nats.Connect("nats://"+listen, tlsOpt, nats.UserInfo("billing", testNATSPassword))
	if err != nil {
		t.Fatalf("internal service cannot connect: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, event.StreamName, jetstream.ConsumerConfig{
		Durable: "billing", FilterSubject: "webhooks.v1.demo.invoice.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	g.post("/webhooks/v1/demo", []byte(`{"other":true}`), map[string]string{"X-Id": "o1", "X-Type": "customer.created"})
	if status, _, b := g.post("/webhooks/v1/demo", []byte(`{"invoice":7}`), map[string]string{"X-Id": "i7", "X-Type": "invoice.paid"}); status != 200 {
		t.Fatalf("status %d %s", status, b)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []*event.Event
	for m := range batch.Messages() {
		e, err := event.DecodeJetStream(m)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
		_ = m.Ack()
	}
	if len(got) != 1 || got[0].ID != "demo:i7" || string(got[0].Body) != `{"invoice":7}` || got[0].Type != "invoice.paid" || got[0].Sequence == 0 {
		t.Fatalf("the filtered consumer read %+v", got)
	}
}

const testNATSPassword = "s3cret-for-tests"

func init() { os.Setenv("HOOKGATE_TEST_NATS_PASSWORD", testNATSPassword) }

// selfSignedCert writes a certificate for 127.0.0.1 and its key.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "hookgate test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
