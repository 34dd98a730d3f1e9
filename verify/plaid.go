package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"

	"strings"
	"sync"
	"time"
)

func init() { Register("plaid", newPlaid) }

// plaid verifies Plaid webhooks (plaid.com/docs/api/webhooks/webhook-verification):
// Plaid-Verification is a JWT signed with ES256 under the key its header's
// "kid" names; its claims hold "iat" (Unix seconds, within the tolerance)
// and "request_body_sha256" (hex SHA-256 of the body). The type is the
// body's "webhook_type" and "webhook_code" joined by a dot
// (TRANSACTIONS.SYNC_UPDATES_AVAILABLE); Plaid sends no delivery id.
//
// Keys come one of two ways:
//
//   - Online (option key_url set): the secret is the Plaid API secret and
//     option client_id the client id. A key id not yet known is fetched
//     with POST key_url {"client_id","secret","key_id"} (Plaid's
//     /webhook_verification_key/get, e.g.
//     https://production.plaid.com/webhook_verification_key/get), then
//     cached; a key whose expired_at has passed is refused. Fetches are
//     bounded: one per unknown key id per minute, at most
//     plaidFetchesPerMinute in all, each with a 5 s timeout.
//   - Offline (no key_url): each secret is "<kid>:<base64 DER key>", the
//     public key (PKIX) of a key you fetched yourself, so the gateway
//     never calls Plaid. A private key (SEC 1 or PKCS #8) verifies and
//     signs; it is for tests and the CLI.
type plaid struct {
	tol     time.Duration
	offline map[string]*ecdsa.PublicKey
	signer  *ecdsa.PrivateKey
	signKID string
	online  *plaidKeys
}

// plaidFetchesPerMinute bounds the key fetches one source makes, so
// requests with made-up key ids cannot turn the gateway against Plaid's API.
const plaidFetchesPerMinute = 10

func newPlaid(c Config) (Verifier, error) {
	tol, err := checkConfig(c, "key_url", "client_id")
	if err != nil {
		return nil, err
	}
	p := &plaid{tol: tol, offline: map[string]*ecdsa.PublicKey{}}
	if u := c.Options["key_url"]; u != "" {
		if c.Options["client_id"] == "" || !(strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")) {
			return nil, fmt.Errorf("%w: scheme plaid: key_url needs an http(s) URL and client_id the Plaid client id", ErrConfig)
		}
		p.online = &plaidKeys{url: u, clientID: c.Options["client_id"], secret: c.Secrets[0],
			client: &http.Client{Timeout: 5 * time.Second}, keys: map[string]plaidKey{}, tried: map[string]time.Time{}}
		return p, nil
	}
	for i, s := range c.Secrets {
		kid, key, ok := strings.Cut(s, ":")
		if !ok || kid == "" {
			return nil, fmt.Errorf("%w: scheme plaid: secret %d is not <kid>:<base64 DER key>; or set key_url and client_id to fetch keys from Plaid", ErrConfig, i+1)
		}
		pub, priv, err := parseP256Key(key)
		if err != nil {
			return nil, fmt.Errorf("%w: scheme plaid: secret %d: %v", ErrConfig, i+1, err)
		}
		p.offline[kid] = pub
		if i == 0 && priv != nil {
			p.signer, p.signKID = priv, kid
		}
	}
	return p, nil
}

// jwtParts splits a compact JWT and decodes its header and claims.
func jwtParts(token string) (header, claims []byte, signed string, sig []byte, err error) {
	const maxJWT = 8 << 10
	if len(token) > maxJWT {
		return nil, nil, "", nil, fail("plaid", ErrMalformed, "Plaid-Verification is over %d bytes", maxJWT)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, "", nil, fail("plaid", ErrMalformed, "Plaid-Verification is not a JWT (header.claims.signature)")
	}
	dec := base64.RawURLEncoding.Strict() // one encoding per JWT: non-zero padding bits are refused
	if header, err = dec.DecodeString(parts[0]); err == nil {
		if claims, err = dec.DecodeString(parts[1]); err == nil {
			sig, err = dec.DecodeString(parts[2])
		}
	}
	if err != nil {
		return nil, nil, "", nil, fail("plaid", ErrMalformed, "Plaid-Verification is not base64url")
	}
	return header, claims, parts[0] + "." + parts[1], sig, nil
}

// Verify implements Verifier.
func (p *plaid) Verify(r *Request) (Result, error) {
	token := strings.TrimSpace(r.Header.Get("Plaid-Verification"))
	if token == "" {
		return Result{}, fail("plaid", ErrMissing, "no Plaid-Verification header")
	}
	header, claims, signed, sig, err := jwtParts(token)
	if err != nil {
		return Result{}, err
	}
	h := fields(header, "alg", "kid")
	if alg := text(h[0]); alg != "ES256" {
		return Result{}, fail("plaid", ErrMalformed, "JWT alg %s, want ES256", quote(alg))
	}
	kid := text(h[1])
	if kid == "" || len(sig) != 64 {
		return Result{}, fail("plaid", ErrMalformed, "JWT without a kid or with a signature of %d bytes, not 64", len(sig))
	}
	pub, err := p.key(kid, r.now())
	if err != nil {
		return Result{}, err
	}
	digest := sha256.Sum256([]byte(signed))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return Result{}, fail("plaid", ErrMismatch, "JWT signature does not match key %s", quote(kid))
	}
	c := fields(claims, "iat", "request_body_sha256")
	if err := checkTimestamp("plaid", "JWT iat", text(c[0]), time.Second, r.now(), p.tol); err != nil {
		return Result{}, err
	}
	want, err := hex.DecodeString(text(c[1]))
	got := sha256.Sum256(r.Body)
	if err != nil || !bytes.Equal(want, got[:]) {
		return Result{}, fail("plaid", ErrMismatch, "the body's SHA-256 is not the JWT's request_body_sha256")
	}
	f := fields(r.Body, "webhook_type", "webhook_code")
	typ := text(f[0])
	if code := text(f[1]); typ != "" && code != "" {
		typ += "." + code
	}
	return Result{Type: typ}, nil
}

// key finds the public key kid names.
func (p *plaid) key(kid string, now time.Time) (*ecdsa.PublicKey, error) {
	if p.online == nil {
		if k := p.offline[kid]; k != nil {
			return k, nil
		}
		return nil, fail("plaid", ErrMismatch, "key id %s is not among the %d configured keys", quote(kid), len(p.offline))
	}
	return p.online.get(kid, now)
}

func (p *plaid) signable() error {
	if p.signer == nil {
		return fmt.Errorf("%w: scheme plaid signs with an offline private key (<kid>:<base64 DER private key>) as the first secret", ErrConfig)
	}
	return nil
}

// Sign implements Signer: a Plaid-Verification JWT over the body.
func (p *plaid) Sign(r *Request) error {
	if err := p.signable(); err != nil {
		return err
	}
	sum := sha256.Sum256(r.Body)
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": p.signKID, "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{"iat": r.now().Unix(), "request_body_sha256": hex.EncodeToString(sum[:])})
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signed))
	rr, ss, err := ecdsa.Sign(rand.Reader, p.signer, digest[:])
	if err != nil {
		return fmt.Errorf("plaid: signing: %w", err)
	}
	sig := make([]byte, 64)
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	headers(r).Set("Plaid-Verification", signed+"."+enc.EncodeToString(sig))
	return nil
}

// plaidKey is a fetched key and when it expires (zero: not expired).
type plaidKey struct {
	pub     *ecdsa.PublicKey
	expires time.Time
}

// plaidKeys fetches and caches Plaid's webhook keys.
type plaidKeys struct {
	url, clientID, secret string
	client                *http.Client

	mu      sync.Mutex
	keys    map[string]plaidKey
	tried   map[string]time.Time // last fetch per key id
	window  time.Time            // start of the current minute of fetches
	fetches int
}

// get returns the key kid names, fetching it when unknown.
func (k *plaidKeys) get(kid string, now time.Time) (*ecdsa.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key, ok := k.keys[kid]
	if !ok {
		if err := k.admitFetch(kid, now); err != nil {
			return nil, err
		}
		var err error
		if key, err = k.fetch(kid); err != nil {
			return nil, err
		}
		k.keys[kid] = key
	}
	if !key.expires.IsZero() && now.After(key.expires) {
		return nil, fail("plaid", ErrMismatch, "key %s expired at %s", quote(kid), key.expires.UTC().Format(time.RFC3339))
	}
	return key.pub, nil
}

// admitFetch applies the fetch bounds.
func (k *plaidKeys) admitFetch(kid string, now time.Time) error {
	if last, ok := k.tried[kid]; ok && now.Sub(last) < time.Minute && now.Sub(last) > -time.Minute {
		return fail("plaid", ErrMismatch, "key id %s was not found at key_url less than a minute ago", quote(kid))
	}
	if now.Sub(k.window) >= time.Minute || now.Before(k.window) {
		k.window, k.fetches = now, 0
	}
	if k.fetches >= plaidFetchesPerMinute {
		return fail("plaid", ErrMismatch, "key id %s unknown and %d key fetches already made this minute", quote(kid), plaidFetchesPerMinute)
	}
	if len(k.tried) > 1024 {
		clear(k.tried)
	}
	k.fetches++
	k.tried[kid] = now
	return nil
}

// fetch asks key_url for the key kid names.
func (k *plaidKeys) fetch(kid string) (plaidKey, error) {
	body, _ := json.Marshal(map[string]string{"client_id": k.clientID, "secret": k.secret, "key_id": kid})
	resp, err := k.client.Post(k.url, "application/json", bytes.NewReader(body))
	if err != nil {
		return plaidKey{}, fail("plaid", ErrConfig, "fetching key %s from key_url: %v", quote(kid), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return plaidKey{}, fail("plaid", ErrMismatch, "key_url answered %d for key id %s (unknown key, or wrong client_id/secret)", resp.StatusCode, quote(kid))
	}
	return parsePlaidJWK(kid, b)
}

// parsePlaidJWK reads {"key": {"kty":"EC","crv":"P-256","x","y","kid","expired_at"}}.
func parsePlaidJWK(kid string, b []byte) (plaidKey, error) {
	var out struct {
		Key struct {
			Kty, Crv, Kid, X, Y string
			ExpiredAt           *int64 `json:"expired_at"`
		} `json:"key"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return plaidKey{}, fail("plaid", ErrConfig, "key_url's answer is not a key: %v", err)
	}
	j := out.Key
	x, errX := base64.RawURLEncoding.DecodeString(j.X)
	y, errY := base64.RawURLEncoding.DecodeString(j.Y)
	if j.Kty != "EC" || j.Crv != "P-256" || j.Kid != kid || errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return plaidKey{}, fail("plaid", ErrConfig, "key_url's key for %s is not an EC P-256 JWK with that kid", quote(kid))
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return plaidKey{}, fail("plaid", ErrConfig, "key_url's key for %s is not on P-256", quote(kid))
	}
	key := plaidKey{pub: pub}
	if j.ExpiredAt != nil {
		key.expires = time.Unix(*j.ExpiredAt, 0)
	}
	return key, nil
}

var (
	_ Verifier = (*plaid)(nil)
	_ Signer   = (*plaid)(nil)
)
