package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

func init() { Register("stripe", stripeForm.constructor()) }

// Stripe verifies Stripe webhooks: Stripe-Signature is
// "t=<unix>,v1=<hex>[,v1=<hex>...]", each v1 the HMAC-SHA256 of
// "<t>.<body>" under the endpoint's signing secret (whsec_..., used as it
// is). During a secret roll Stripe sends one v1 per active secret. The
// timestamp must be within the tolerance. The delivery id and type are the
// event's "id" (evt_...) and "type" from the body.
//
// No options.
func Stripe(secrets ...string) (Verifier, error) {
	return stripeForm.constructor()(Config{Scheme: "stripe", Secrets: secrets})
}

// tv1Form describes a Stripe-like scheme: the header holding
// "t=<unix>,v1=<hex>...", and the body fields of the delivery id and type
// ("" for none). Stripe, Mux and Calendly sign this way.
type tv1Form struct {
	scheme, header     string
	idField, typeField string
}

var stripeForm = tv1Form{scheme: "stripe", header: "Stripe-Signature", idField: "id", typeField: "type"}

// tv1 verifies and signs one tv1Form.
type tv1 struct {
	form *tv1Form
	ring keyring
	tol  time.Duration
}

// constructor makes the scheme's Constructor.
func (f tv1Form) constructor() Constructor {
	return func(c Config) (Verifier, error) {
		ring, tol, err := rawRing(c, sha256.New)
		if err != nil {
			return nil, err
		}
		return &tv1{&f, ring, tol}, nil
	}
}

// parseTV1Signature reads a "t=<unix>,v1=<hex>..." header into its
// timestamp and v1 signatures; v0 and future schemes are ignored.
func parseTV1Signature(scheme, header, value string) (ts string, sigs [][]byte, err error) {
	return keyValues(scheme, header, value, ',', "t", "v1", hex.DecodeString)
}

// parseStripeSignature reads Stripe-Signature.
func parseStripeSignature(value string) (ts string, sigs [][]byte, err error) {
	return parseTV1Signature("stripe", "Stripe-Signature", value)
}

var dot = []byte{'.'}

// Verify implements Verifier.
func (s *tv1) Verify(r *Request) (Result, error) {
	f := s.form
	ts, sigs, err := parseTV1Signature(f.scheme, f.header, r.Header.Get(f.header))
	if err != nil {
		return Result{}, err
	}
	if err := checkTimestamp(f.scheme, f.header+" t=", ts, time.Second, r.now(), s.tol); err != nil {
		return Result{}, err
	}
	if len(sigs) == 0 {
		return Result{}, fail(f.scheme, ErrMismatch, "%s carries no v1 signature", f.header)
	}
	if !s.ring.match(sigs, []byte(ts), dot, r.Body) {
		return Result{}, s.ring.mismatch(f.scheme, len(sigs))
	}
	var res Result
	if f.idField != "" {
		res.ID = text(field(r.Body, f.idField))
	}
	if f.typeField != "" {
		res.Type = text(field(r.Body, f.typeField))
	}
	return res, nil
}

// Sign implements Signer.
func (s *tv1) Sign(r *Request) error {
	ts := unixText(r.now(), time.Second)
	sig := s.ring.sign([]byte(ts), dot, r.Body)
	headers(r).Set(s.form.header, "t="+ts+",v1="+hex.EncodeToString(sig))
	return nil
}

var (
	_ Verifier = (*tv1)(nil)
	_ Signer   = (*tv1)(nil)
)
