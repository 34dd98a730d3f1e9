package verify

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

func init() {
	Register("standard-webhooks", func(c Config) (Verifier, error) { return newStdWebhooks(c, standardHeaders) })
}

// StandardWebhooks verifies the Standard Webhooks scheme
// (https://www.standardwebhooks.com): webhook-signature is a
// space-separated list of "v1,<base64>" (HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>") and "v1a,<base64>" (Ed25519
// of the same content) signatures; webhook-timestamp must be within the
// tolerance. The delivery id is webhook-id, the type the body's "type".
//
// Secrets: "whsec_<base64>" (or bare base64) HMAC keys; "whpk_<base64>"
// Ed25519 public keys for v1a; "whsk_<base64>" Ed25519 private keys (seed or
// full key), which verify and sign v1a. No options.
func StandardWebhooks(secrets ...string) (Verifier, error) {
	return newStdWebhooks(Config{Scheme: "standard-webhooks", Secrets: secrets}, standardHeaders)
}

// stdHeaders names the three headers, which Svix prefixes differently.
type stdHeaders struct {
	scheme, id, timestamp, signature string
	// fallback is the other family's prefix, as Svix's libraries read the
	// webhook-* headers when svix-* are absent.
	fallback *stdHeaders
}

var standardHeaders = &stdHeaders{scheme: "standard-webhooks", id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature"}

type stdWebhooks struct {
	h    *stdHeaders
	ring keyring
	pubs []ed25519.PublicKey
	// first is the newest secret: an HMAC key or a private key, or nil
	// when it is a public key and the verifier cannot sign.
	first any
	tol   time.Duration
}

func newStdWebhooks(c Config, h *stdHeaders) (Verifier, error) {
	tol, err := checkConfig(c)
	if err != nil {
		return nil, err
	}
	w := &stdWebhooks{h: h, ring: keyring{hash: sha256.New}, tol: tol}
	for i, s := range c.Secrets {
		kind, key, err := parseStdSecret(s)
		if err != nil {
			return nil, fmt.Errorf("%w: scheme %s: secret %d: %v", ErrConfig, c.Scheme, i+1, err)
		}
		var signer any
		switch kind {
		case "whsec_":
			w.ring.keys = append(w.ring.keys, key)
			signer = key
		case "whpk_":
			w.pubs = append(w.pubs, ed25519.PublicKey(key))
		case "whsk_":
			priv := ed25519.PrivateKey(key)
			if len(key) == ed25519.SeedSize {
				priv = ed25519.NewKeyFromSeed(key)
			}
			w.pubs = append(w.pubs, priv.Public().(ed25519.PublicKey))
			signer = priv
		}
		if i == 0 {
			w.first = signer
		}
	}
	w.ring = newKeyring(w.ring.keys, sha256.New)
	return w, nil
}

// parseStdSecret splits a secret into its kind and decoded key.
func parseStdSecret(s string) (kind string, key []byte, err error) {
	kind = "whsec_"
	for _, p := range []string{"whsec_", "whpk_", "whsk_"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			kind, s = p, rest
			break
		}
	}
	key, err = base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", nil, fmt.Errorf("%s key is not base64", kind)
	}
	switch {
	case len(key) == 0:
		return "", nil, fmt.Errorf("%s key is empty", kind)
	case kind == "whpk_" && len(key) != ed25519.PublicKeySize:
		return "", nil, fmt.Errorf("whpk_ key is %d bytes, an Ed25519 public key is %d", len(key), ed25519.PublicKeySize)
	case kind == "whsk_" && len(key) != ed25519.SeedSize && len(key) != ed25519.PrivateKeySize:
		return "", nil, fmt.Errorf("whsk_ key is %d bytes, an Ed25519 private key is %d or %d", len(key), ed25519.SeedSize, ed25519.PrivateKeySize)
	}
	return kind, key, nil
}

// stdSignatures holds the decoded signatures of a webhook-signature header.
type stdSignatures struct {
	v1, v1a [][]byte
}

// parseStdSignatures reads a webhook-signature header: space-separated
// "<version>,<base64>" items. Unknown versions and undecodable items are
// skipped, as the reference libraries do; at most MaxSignatures are kept.
func parseStdSignatures(value string) (s stdSignatures) {
	n := 0
	eachItem(value, ' ', func(item string) bool {
		version, sig, ok := strings.Cut(item, ",")
		if !ok || (version != "v1" && version != "v1a") {
			return true
		}
		b, err := base64.StdEncoding.DecodeString(sig)
		if err != nil || len(b) == 0 {
			return true
		}
		if version == "v1" {
			s.v1 = append(s.v1, b)
		} else {
			s.v1a = append(s.v1a, b)
		}
		n++
		return n < MaxSignatures
	})
	return s
}

// get reads a header of the family, falling back to the other family.
func (h *stdHeaders) get(r *Request, pick func(*stdHeaders) string) (name, value string) {
	name = pick(h)
	if value = r.Header.Get(name); value == "" && h.fallback != nil {
		if v := r.Header.Get(pick(h.fallback)); v != "" {
			return pick(h.fallback), v
		}
	}
	return name, value
}

// Verify implements Verifier.
func (w *stdWebhooks) Verify(r *Request) (Result, error) {
	scheme := w.h.scheme
	idName, id := w.h.get(r, func(h *stdHeaders) string { return h.id })
	tsName, ts := w.h.get(r, func(h *stdHeaders) string { return h.timestamp })
	sigName, sigValue := w.h.get(r, func(h *stdHeaders) string { return h.signature })
	switch {
	case id == "":
		return Result{}, fail(scheme, ErrMissing, "no %s header", idName)
	case sigValue == "":
		return Result{}, fail(scheme, ErrMissing, "no %s header", sigName)
	}
	if err := checkTimestamp(scheme, tsName, ts, time.Second, r.now(), w.tol); err != nil {
		return Result{}, err
	}
	sigs := parseStdSignatures(sigValue)
	if len(sigs.v1) == 0 && len(sigs.v1a) == 0 {
		return Result{}, fail(scheme, ErrMalformed, "%s holds no v1 or v1a signature", sigName)
	}
	content := [][]byte{[]byte(id), dot, []byte(ts), dot, r.Body}
	ok := len(sigs.v1) > 0 && len(w.ring.keys) > 0 && w.ring.match(sigs.v1, content...)
	if !ok && len(sigs.v1a) > 0 && len(w.pubs) > 0 {
		// An Ed25519 check costs some 30 HMACs of a small body, so the
		// key × signature pairs tried are capped too.
		msg, tries := joinParts(content), 0
		for _, pub := range w.pubs {
			for _, sig := range sigs.v1a {
				if tries++; !ok && tries <= MaxSignatures {
					ok = ed25519.Verify(pub, msg, sig)
				}
			}
		}
	}
	if !ok {
		return Result{}, fail(scheme, ErrMismatch, "%s (v1 %d, v1a %d) match none of %d HMAC secret(s) and %d public key(s)",
			sigName, len(sigs.v1), len(sigs.v1a), len(w.ring.keys), len(w.pubs))
	}
	return Result{ID: id, Type: text(fields(r.Body, "type")[0])}, nil
}

// joinParts concatenates the signed content for Ed25519, which signs one
// message rather than a stream.
func joinParts(parts [][]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	msg := make([]byte, 0, n)
	for _, p := range parts {
		msg = append(msg, p...)
	}
	return msg
}

func (w *stdWebhooks) signable() error {
	if w.first == nil {
		return fmt.Errorf("%w: scheme %s signs with a whsec_ or whsk_ secret, the first secret is a public key", ErrConfig, w.h.scheme)
	}
	return nil
}

// Sign implements Signer: v1 with a whsec_ secret, v1a with a whsk_ one.
// It adds a random msg_ id when the id header is not set.
func (w *stdWebhooks) Sign(r *Request) error {
	if err := w.signable(); err != nil {
		return err
	}
	h := headers(r)
	id := setDefault(h, w.h.id, "msg_"+randomHex(12))
	ts := unixText(r.now(), time.Second)
	h.Set(w.h.timestamp, ts)
	content := [][]byte{[]byte(id), dot, []byte(ts), dot, r.Body}
	switch k := w.first.(type) {
	case ed25519.PrivateKey:
		h.Set(w.h.signature, "v1a,"+base64.StdEncoding.EncodeToString(ed25519.Sign(k, joinParts(content))))
	case []byte:
		h.Set(w.h.signature, "v1,"+base64.StdEncoding.EncodeToString(w.ring.mac(k, content...)))
	}
	return nil
}

var (
	_ Verifier = (*stdWebhooks)(nil)
	_ Signer   = (*stdWebhooks)(nil)
)
