package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

func init() { Register("sendgrid", newSendGrid) }

// sendgrid verifies SendGrid's signed Event Webhook
// (docs.sendgrid.com/for-developers/tracking-events/getting-started-event-webhook-security-features):
// X-Twilio-Email-Event-Webhook-Signature is the base64 ASN.1 ECDSA P-256
// signature of SHA-256(<X-Twilio-Email-Event-Webhook-Timestamp> + body);
// the timestamp (Unix seconds) must be within the tolerance.
//
// The secret is the Verification Key SendGrid shows: a base64 DER public
// key (PKIX, "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE..."). A base64 DER
// private key (SEC 1 or PKCS #8) also verifies and signs; SendGrid never
// hands one out, it is for tests and the CLI. The body is an array of
// events: the delivery id is the first event's sg_event_id, the type its
// "event" (delivered, open...). No options.
type sendgrid struct {
	pubs []*ecdsa.PublicKey
	priv *ecdsa.PrivateKey
	tol  time.Duration
}

const (
	sendgridSig = "X-Twilio-Email-Event-Webhook-Signature"
	sendgridTS  = "X-Twilio-Email-Event-Webhook-Timestamp"
)

func newSendGrid(c Config) (Verifier, error) {
	tol, err := checkConfig(c)
	if err != nil {
		return nil, err
	}
	s := &sendgrid{tol: tol}
	for i, secret := range c.Secrets {
		pub, priv, err := parseP256Key(secret)
		if err != nil {
			return nil, fmt.Errorf("%w: scheme sendgrid: key %d: %v; paste the Verification Key from SendGrid's Event Webhook settings", ErrConfig, i+1, err)
		}
		s.pubs = append(s.pubs, pub)
		if i == 0 {
			s.priv = priv
		}
	}
	return s, nil
}

// parseP256Key reads a base64 DER P-256 public key, or a private key whose
// public half it also returns.
func parseP256Key(s string) (*ecdsa.PublicKey, *ecdsa.PrivateKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, nil, fmt.Errorf("not base64")
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		if pub, ok := k.(*ecdsa.PublicKey); ok && pub.Curve == elliptic.P256() {
			return pub, nil, nil
		}
		return nil, nil, fmt.Errorf("not an ECDSA P-256 public key")
	}
	var priv *ecdsa.PrivateKey
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		priv = k
	} else if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		priv, _ = k.(*ecdsa.PrivateKey)
	}
	if priv == nil || priv.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("not a DER ECDSA P-256 key")
	}
	return &priv.PublicKey, priv, nil
}

// parseSendGridSignature decodes the signature header.
func parseSendGridSignature(value string) ([]byte, error) {
	if value == "" {
		return nil, fail("sendgrid", ErrMissing, "no %s header", sendgridSig)
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if err != nil || len(sig) < 8 || len(sig) > 72 || sig[0] != 0x30 {
		return nil, fail("sendgrid", ErrMalformed, "%s is not a base64 ASN.1 ECDSA signature", sendgridSig)
	}
	return sig, nil
}

// Verify implements Verifier.
func (s *sendgrid) Verify(r *Request) (Result, error) {
	sig, err := parseSendGridSignature(r.Header.Get(sendgridSig))
	if err != nil {
		return Result{}, err
	}
	ts := r.Header.Get(sendgridTS)
	if err := checkTimestamp("sendgrid", sendgridTS, ts, time.Second, r.now(), s.tol); err != nil {
		return Result{}, err
	}
	sum := sendgridDigest(ts, r.Body)
	for _, pub := range s.pubs {
		if ecdsa.VerifyASN1(pub, sum, sig) {
			first := field(r.Body, "0")
			f := fields(first, "sg_event_id", "event")
			return Result{ID: text(f[0]), Type: text(f[1])}, nil
		}
	}
	return Result{}, fail("sendgrid", ErrMismatch, "%s matches none of %d key(s)", sendgridSig, len(s.pubs))
}

// sendgridDigest is SHA-256(timestamp + body), what SendGrid signs.
func sendgridDigest(ts string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(ts))
	h.Write(body)
	return h.Sum(nil)
}

func (s *sendgrid) signable() error {
	if s.priv == nil {
		return fmt.Errorf("%w: scheme sendgrid signs with a DER private key, the first key is a public key", ErrConfig)
	}
	return nil
}

// Sign implements Signer.
func (s *sendgrid) Sign(r *Request) error {
	if err := s.signable(); err != nil {
		return err
	}
	ts := unixText(r.now(), time.Second)
	sig, err := ecdsa.SignASN1(rand.Reader, s.priv, sendgridDigest(ts, r.Body))
	if err != nil {
		return fmt.Errorf("sendgrid: signing: %w", err)
	}
	h := headers(r)
	h.Set(sendgridTS, ts)
	h.Set(sendgridSig, base64.StdEncoding.EncodeToString(sig))
	return nil
}

var (
	_ Verifier = (*sendgrid)(nil)
	_ Signer   = (*sendgrid)(nil)
)
