package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func init() { Register("hubspot", newHubSpot) }

// HubSpot verifies HubSpot webhooks, signed with the app's client secret.
// Options["version"] picks the signature:
//
//   - "v3" (the default): X-HubSpot-Signature-v3 is the base64
//     HMAC-SHA256 of method + URI + body + X-HubSpot-Request-Timestamp
//     (milliseconds, within the tolerance); the URI is Request.URL with
//     the characters HubSpot lists (%3A %2F %3F %40 %21 %24 %27 %28 %29
//     %2A %2C %3B) decoded.
//   - "v2": X-HubSpot-Signature is the hex SHA-256 of client secret +
//     method + URI + body. No timestamp.
//   - "v1": X-HubSpot-Signature is the hex SHA-256 of client secret +
//     body. No timestamp, and the URL is not needed.
//
// The body is a JSON array of events: the delivery id is the "eventId" of
// a single-event batch (a batch of several has none, so the gateway gives
// it a fresh one) and the type is "subscriptionType" when all events
// share it.
func HubSpot(secrets ...string) (Verifier, error) {
	return newHubSpot(Config{Scheme: "hubspot", Secrets: secrets})
}

type hubspot struct {
	version string
	ring    keyring
	secrets [][]byte
	tol     time.Duration
}

func newHubSpot(c Config) (Verifier, error) {
	ring, tol, err := rawRing(c, sha256.New, "version")
	if err != nil {
		return nil, err
	}
	h := &hubspot{version: "v3", ring: ring, secrets: ring.keys, tol: tol}
	if v, ok := c.Options["version"]; ok {
		if v != "v1" && v != "v2" && v != "v3" {
			return nil, fmt.Errorf("%w: scheme hubspot: version %q is not v1, v2 or v3", ErrConfig, v)
		}
		h.version = v
	}
	return h, nil
}

// hubspotDecoded is HubSpot's list of characters to decode in the URI
// before signing (developers.hubspot.com, "Validate the v3 request
// signature").
var hubspotDecoded = strings.NewReplacer(
	"%3A", ":", "%2F", "/", "%3F", "?", "%40", "@", "%21", "!", "%24", "$",
	"%27", "'", "%28", "(", "%29", ")", "%2A", "*", "%2C", ",", "%3B", ";",
	"%3a", ":", "%2f", "/", "%3f", "?", "%2a", "*", "%2c", ",", "%3b", ";",
)

// uri is the request URI as HubSpot signs it for version v.
func (h *hubspot) uri(r *Request) (string, error) {
	if h.version == "v1" {
		return "", nil
	}
	if r.URL == nil {
		return "", fail("hubspot", ErrConfig, "the URL HubSpot called is unknown: set the source's public_url")
	}
	if h.version == "v3" {
		return hubspotDecoded.Replace(r.URL.String()), nil
	}
	return r.URL.String(), nil
}

// method defaults to POST, the method of every HubSpot webhook.
func method(r *Request) string {
	if r.Method == "" {
		return http.MethodPost
	}
	return r.Method
}

// Verify implements Verifier.
func (h *hubspot) Verify(r *Request) (Result, error) {
	uri, err := h.uri(r)
	if err != nil {
		return Result{}, err
	}
	if h.version == "v3" {
		sig, err := decodeOne("hubspot", "X-HubSpot-Signature-v3", r.Header.Get("X-HubSpot-Signature-v3"), "", base64.StdEncoding.DecodeString)
		if err != nil {
			return Result{}, err
		}
		ts := r.Header.Get("X-HubSpot-Request-Timestamp")
		if err := checkTimestamp("hubspot", "X-HubSpot-Request-Timestamp", ts, time.Millisecond, r.now(), h.tol); err != nil {
			return Result{}, err
		}
		if !h.ring.match([][]byte{sig}, []byte(method(r)), []byte(uri), r.Body, []byte(ts)) {
			return Result{}, h.ring.mismatch("hubspot", 1)
		}
		return hubspotResult(r.Body), nil
	}
	// v1 and v2 are plain SHA-256 digests with the secret as a prefix.
	sig, err := decodeOne("hubspot", "X-HubSpot-Signature", r.Header.Get("X-HubSpot-Signature"), "", hex.DecodeString)
	if err != nil {
		return Result{}, err
	}
	if got := r.Header.Get("X-HubSpot-Signature-Version"); got != "" && got != h.version {
		return Result{}, fail("hubspot", ErrMismatch, "X-HubSpot-Signature-Version is %s, the source expects %s", quote(got), h.version)
	}
	for _, secret := range h.secrets {
		if subtle.ConstantTimeCompare(h.digest(secret, r, uri), sig) == 1 {
			return hubspotResult(r.Body), nil
		}
	}
	return Result{}, h.ring.mismatch("hubspot", 1)
}

// digest is the v1/v2 signature under one secret.
func (h *hubspot) digest(secret []byte, r *Request, uri string) []byte {
	d := sha256.New()
	d.Write(secret)
	if h.version == "v2" {
		d.Write([]byte(method(r)))
		d.Write([]byte(uri))
	}
	d.Write(r.Body)
	return d.Sum(nil)
}

// hubspotResult reads the delivery id and type from a batch of events.
func hubspotResult(body []byte) Result {
	var res Result
	n := 0
	ok := eachElement(body, func(event []byte) {
		f := fields(event, "eventId", "subscriptionType")
		if n == 0 {
			res = Result{ID: text(f[0]), Type: text(f[1])}
		} else if text(f[1]) != res.Type {
			res.Type = ""
		}
		n++
	})
	if !ok {
		return Result{}
	}
	if n > 1 {
		res.ID = ""
	}
	return res
}

// Sign implements Signer.
func (h *hubspot) Sign(r *Request) error {
	uri, err := h.uri(r)
	if err != nil {
		return err
	}
	hd := headers(r)
	if h.version == "v3" {
		ts := unixText(r.now(), time.Millisecond)
		hd.Set("X-HubSpot-Request-Timestamp", ts)
		hd.Set("X-HubSpot-Signature-v3", base64.StdEncoding.EncodeToString(h.ring.sign([]byte(method(r)), []byte(uri), r.Body, []byte(ts))))
		return nil
	}
	hd.Set("X-HubSpot-Signature-Version", h.version)
	hd.Set("X-HubSpot-Signature", hex.EncodeToString(h.digest(h.secrets[0], r, uri)))
	return nil
}

var (
	_ Verifier = (*hubspot)(nil)
	_ Signer   = (*hubspot)(nil)
)
