package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
)

func init() { Register("github", newGitHub) }

// GitHub verifies GitHub webhooks: X-Hub-Signature-256 is "sha256=" and
// the hex HMAC-SHA256 of the body under the webhook secret. The delivery id
// is X-GitHub-Delivery, the type X-GitHub-Event. GitHub's signature has no
// timestamp, so dedup on the delivery id is the only replay defence.
//
// Options: legacy_sha1 "true" also accepts the SHA-1 X-Hub-Signature when
// X-Hub-Signature-256 is absent (GitHub Enterprise Server before 3.x).
func GitHub(secrets ...string) (Verifier, error) {
	return newGitHub(Config{Scheme: "github", Secrets: secrets})
}

type github struct {
	sha256, sha1 keyring
	legacy       bool
}

func newGitHub(c Config) (Verifier, error) {
	if _, err := checkConfig(c, "legacy_sha1"); err != nil {
		return nil, err
	}
	g := &github{
		sha256: newKeyring(rawKeys(c.Secrets), sha256.New),
		sha1:   newKeyring(rawKeys(c.Secrets), sha1.New),
	}
	if v, ok := c.Options["legacy_sha1"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%w: scheme github: legacy_sha1 %q is not true or false", ErrConfig, v)
		}
		g.legacy = b
	}
	return g, nil
}

// Verify implements Verifier.
func (g *github) Verify(r *Request) (Result, error) {
	name, ring, prefix := "X-Hub-Signature-256", g.sha256, "sha256="
	value := r.Header.Get(name)
	if value == "" && g.legacy && r.Header.Get("X-Hub-Signature") != "" {
		name, ring, prefix = "X-Hub-Signature", g.sha1, "sha1="
		value = r.Header.Get(name)
	}
	var buf [sha256.Size]byte
	sig, err := decodeOneHex("github", name, value, prefix, buf[:])
	if err != nil {
		return Result{}, err
	}
	if !ring.match([][]byte{sig}, r.Body) {
		return Result{}, ring.mismatch("github", 1)
	}
	// Canonical names: Header.Get allocates to canonicalize any other
	// spelling (GitHub sends X-GitHub-Delivery, the same header).
	return Result{ID: r.Header.Get("X-Github-Delivery"), Type: r.Header.Get("X-Github-Event")}, nil
}

// Sign implements Signer. It adds a random X-GitHub-Delivery when none is
// set, and the legacy X-Hub-Signature when legacy_sha1 is on, as GitHub
// sends both.
func (g *github) Sign(r *Request) error {
	h := headers(r)
	setDefault(h, "X-GitHub-Delivery", uuid4())
	h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(g.sha256.sign(r.Body)))
	if g.legacy {
		h.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(g.sha1.sign(r.Body)))
	}
	return nil
}

var (
	_ Verifier = (*github)(nil)
	_ Signer   = (*github)(nil)
)
