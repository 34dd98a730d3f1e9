package verify

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Plaid publishes no fixed vector (its keys rotate and are fetched per
// client), so these tests sign with a P-256 test key (p256Priv2, made with
// openssl ecparam) and check the JWT rules of Plaid's "Verify webhooks"
// page: ES256 only, the kid's key, iat within the tolerance, the body's
// SHA-256 in request_body_sha256.

const plaidBody = `{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE","item_id":"wz666MBjYWTp2PDzzggYhM6oWWmBb"}`

// plaidPublic is p256Priv2's public key, base64 PKIX DER.
func plaidPublic(t testing.TB) string {
	t.Helper()
	pub, _, err := parseP256Key(p256Priv2)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// plaidSigned signs plaidBody at now with kid k1.
func plaidSigned(t testing.TB, body string, now time.Time) *Request {
	t.Helper()
	s, err := NewSigner(Config{Scheme: "plaid", Secrets: []string{"k1:" + p256Priv2}})
	if err != nil {
		t.Fatal(err)
	}
	r := request(body, now)
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// plaidJWT builds a JWT with the given header and claims and a zero
// signature of the right size.
func plaidJWT(header, claims string) string {
	e := base64.RawURLEncoding
	return e.EncodeToString([]byte(header)) + "." + e.EncodeToString([]byte(claims)) + "." + e.EncodeToString(make([]byte, 64))
}

func TestPlaidOffline(t *testing.T) {
	v := mustNew(t, Config{Scheme: "plaid", Secrets: []string{"k1:" + plaidPublic(t)}})
	want := Result{Type: "TRANSACTIONS.SYNC_UPDATES_AVAILABLE"}
	accept(t, v, plaidSigned(t, plaidBody, signedAt), want)

	r := plaidSigned(t, plaidBody, signedAt)
	r.Body = []byte(strings.Replace(plaidBody, "TRANSACTIONS", "TRANSACTIONZ", 1))
	reject(t, v, r, ErrMismatch)
	r = plaidSigned(t, plaidBody, signedAt.Add(-6*time.Minute))
	r.Now = signedAt
	reject(t, v, r, ErrExpired)
	r = plaidSigned(t, plaidBody, time.Unix(99999999999, 0))
	r.Now = signedAt
	reject(t, v, r, ErrExpired)
	reject(t, mustNew(t, Config{Scheme: "plaid", Secrets: []string{"k2:" + plaidPublic(t)}}), plaidSigned(t, plaidBody, signedAt), ErrMismatch)
	reject(t, v, request(plaidBody, signedAt), ErrMissing)
	for _, bad := range []string{"x", "a.b", "a.b.c.d", "!!.??.##",
		plaidJWT(`{"alg":"none","kid":"k1"}`, `{}`), plaidJWT(`{"alg":"HS256","kid":"k1"}`, `{}`), plaidJWT(`{"alg":"ES256"}`, `{}`)} {
		reject(t, v, request(plaidBody, signedAt, "Plaid-Verification", bad), ErrMalformed)
	}
	// A forged signature under the right kid.
	reject(t, v, request(plaidBody, signedAt, "Plaid-Verification", plaidJWT(`{"alg":"ES256","kid":"k1"}`, `{"iat":1750000000}`)), ErrMismatch)

	for _, c := range []Config{
		{Scheme: "plaid", Secrets: []string{"no-kid"}},
		{Scheme: "plaid", Secrets: []string{"k1:notbase64!"}},
		{Scheme: "plaid", Secrets: []string{"s"}, Options: map[string]string{"key_url": "https://x"}},
		{Scheme: "plaid", Secrets: []string{"s"}, Options: map[string]string{"key_url": "ftp://x", "client_id": "c"}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if _, err := NewSigner(Config{Scheme: "plaid", Secrets: []string{"k1:" + plaidPublic(t)}}); err == nil {
		t.Error("NewSigner accepted a public key")
	}
}

// plaidKeyServer is Plaid's /webhook_verification_key/get on loopback: it
// knows key k1 (expired_at given), counts requests and checks their body.
func plaidKeyServer(t *testing.T, expiredAt *int64) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	pub, _, _ := parseP256Key(p256Priv2)
	point, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		var req struct {
			ClientID string `json:"client_id"`
			Secret   string `json:"secret"`
			KeyID    string `json:"key_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if r.Method != http.MethodPost || req.ClientID != "client-1" || req.Secret != "plaid-secret" {
			http.Error(w, `{"error_code":"INVALID_API_KEYS"}`, http.StatusBadRequest)
			return
		}
		if req.KeyID != "k1" {
			http.Error(w, `{"error_code":"INVALID_WEBHOOK_VERIFICATION_KEY_ID"}`, http.StatusBadRequest)
			return
		}
		e := base64.RawURLEncoding
		_ = json.NewEncoder(w).Encode(map[string]any{"key": map[string]any{
			"alg": "ES256", "crv": "P-256", "kid": "k1", "kty": "EC", "use": "sig",
			"x": e.EncodeToString(point[1:33]), "y": e.EncodeToString(point[33:]), "created_at": 1560466143, "expired_at": expiredAt,
		}, "request_id": "RZ6Omi1bzzwDaLo"})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestPlaidOnline(t *testing.T) {
	srv, fetches := plaidKeyServer(t, nil)
	cfg := Config{Scheme: "plaid", Secrets: []string{"plaid-secret"}, Options: map[string]string{"key_url": srv.URL, "client_id": "client-1"}}
	v := mustNew(t, cfg)
	for range 3 {
		accept(t, v, plaidSigned(t, plaidBody, signedAt), Result{Type: "TRANSACTIONS.SYNC_UPDATES_AVAILABLE"})
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d key fetches for one key id, want 1 (cached)", n)
	}
	// Unknown key ids: refused, fetched once per minute each, and at most
	// plaidFetchesPerMinute in all.
	unknown := func(kid string, now time.Time) *Request {
		return request(plaidBody, now, "Plaid-Verification", plaidJWT(`{"alg":"ES256","kid":"`+kid+`"}`, `{}`))
	}
	reject(t, v, unknown("nope", signedAt), ErrMismatch)
	reject(t, v, unknown("nope", signedAt.Add(time.Second)), ErrMismatch)
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d key fetches, want 2: an unknown kid is not fetched twice a minute", n)
	}
	for i := range 20 {
		reject(t, v, unknown("made-up-"+string(rune('a'+i)), signedAt.Add(2*time.Second)), ErrMismatch)
	}
	if n := fetches.Load(); n != plaidFetchesPerMinute {
		t.Fatalf("%d key fetches in a minute, want %d", n, plaidFetchesPerMinute)
	}
	// The next minute allows fetches again.
	reject(t, v, unknown("later", signedAt.Add(2*time.Minute)), ErrMismatch)
	if n := fetches.Load(); n != plaidFetchesPerMinute+1 {
		t.Fatalf("%d key fetches, want %d", n, plaidFetchesPerMinute+1)
	}

	// Wrong API credentials: the key is never obtained.
	bad := cfg
	bad.Secrets = []string{"wrong-secret"}
	reject(t, mustNew(t, bad), plaidSigned(t, plaidBody, signedAt), ErrMismatch)

	// An expired key is refused.
	past := signedAt.Add(-time.Hour).Unix()
	srv2, _ := plaidKeyServer(t, &past)
	cfg2 := cfg
	cfg2.Options = map[string]string{"key_url": srv2.URL, "client_id": "client-1"}
	err := reject(t, mustNew(t, cfg2), plaidSigned(t, plaidBody, signedAt), ErrMismatch)
	if !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired key: %v", err)
	}
	noSecretIn(t, err, "plaid-secret")

	// Plaid unreachable: a configuration error, not a crash.
	srv3, _ := plaidKeyServer(t, nil)
	cfg3 := cfg
	cfg3.Options = map[string]string{"key_url": srv3.URL, "client_id": "client-1"}
	srv3.Close()
	err = reject(t, mustNew(t, cfg3), plaidSigned(t, plaidBody, signedAt), ErrConfig)
	noSecretIn(t, err, "plaid-secret")
}
