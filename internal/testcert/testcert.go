// Package testcert makes a throwaway certificate authority for tests: a
// server certificate for 127.0.0.1 and a client certificate, both signed
// by it, and nothing trusted by the system.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// Set is a CA and two leaf certificates it signed.
type Set struct {
	// CAPEM is the CA certificate, PEM-encoded; CAPool trusts only it.
	CAPEM  []byte
	CAPool *x509.CertPool
	// Server is valid for 127.0.0.1 and ::1; ServerCertPEM and
	// ServerKeyPEM are the same, PEM-encoded.
	Server                      tls.Certificate
	ServerCertPEM, ServerKeyPEM []byte
	// ClientCertPEM and ClientKeyPEM are a client certificate with common
	// name ClientName; Client is the same, parsed.
	ClientCertPEM, ClientKeyPEM []byte
	Client                      tls.Certificate
}

// ClientName is the common name of the client certificate.
const ClientName = "hookgate-test-client"

// New makes a Set.
func New(t testing.TB) *Set {
	t.Helper()
	caKey := newKey(t)
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Hookgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	s := &Set{CAPEM: pemBlock("CERTIFICATE", caDER), CAPool: x509.NewCertPool()}
	s.CAPool.AddCert(ca)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", kder)
	}
	s.ServerCertPEM, s.ServerKeyPEM = leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback})
	if s.Server, err = tls.X509KeyPair(s.ServerCertPEM, s.ServerKeyPEM); err != nil {
		t.Fatal(err)
	}
	s.ClientCertPEM, s.ClientKeyPEM = leaf(3, ClientName, x509.ExtKeyUsageClientAuth, nil)
	if s.Client, err = tls.X509KeyPair(s.ClientCertPEM, s.ClientKeyPEM); err != nil {
		t.Fatal(err)
	}
	return s
}

// ServerConfig is a server TLS config with the server certificate that
// requires a client certificate signed by the CA when mutual is true.
func (s *Set) ServerConfig(mutual bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{s.Server}, MinVersion: tls.VersionTLS12}
	if mutual {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = s.CAPool
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
