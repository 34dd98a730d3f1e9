package verify

import (
	"crypto/sha256"
	"crypto/subtle"
)

func init() { Register("gitlab", newGitLab) }

// GitLab verifies GitLab webhooks: X-Gitlab-Token must equal the webhook's
// secret token. GitLab sends the token itself, not a signature, so only
// TLS keeps it secret and nothing binds the body. The delivery id is
// X-Gitlab-Event-UUID (X-Gitlab-Webhook-UUID on older versions), the type
// X-Gitlab-Event ("Push Hook"). No options.
func GitLab(tokens ...string) (Verifier, error) {
	return newGitLab(Config{Scheme: "gitlab", Secrets: tokens})
}

type gitlab struct {
	sums  [][sha256.Size]byte
	first string // the newest token, which Sign sends
}

func newGitLab(c Config) (Verifier, error) {
	if _, err := checkConfig(c); err != nil {
		return nil, err
	}
	g := &gitlab{first: c.Secrets[0]}
	for _, s := range c.Secrets {
		g.sums = append(g.sums, sha256.Sum256([]byte(s)))
	}
	return g, nil
}

// Verify implements Verifier. It compares digests, so the time taken says
// nothing about the token's length either.
func (g *gitlab) Verify(r *Request) (Result, error) {
	token := r.Header.Get("X-Gitlab-Token")
	if token == "" {
		return Result{}, fail("gitlab", ErrMissing, "no X-Gitlab-Token header")
	}
	got := sha256.Sum256([]byte(token))
	ok := 0
	for i := range g.sums {
		ok |= subtle.ConstantTimeCompare(got[:], g.sums[i][:])
	}
	if ok != 1 {
		return Result{}, fail("gitlab", ErrMismatch, "X-Gitlab-Token matches none of %d token(s)", len(g.sums))
	}
	id := r.Header.Get("X-Gitlab-Event-UUID")
	if id == "" {
		id = r.Header.Get("X-Gitlab-Webhook-UUID")
	}
	return Result{ID: id, Type: r.Header.Get("X-Gitlab-Event")}, nil
}

// Sign implements Signer: it sets the token and a random event UUID.
func (g *gitlab) Sign(r *Request) error {
	h := headers(r)
	setDefault(h, "X-Gitlab-Event-UUID", uuid4())
	h.Set("X-Gitlab-Token", g.first)
	return nil
}

var (
	_ Verifier = (*gitlab)(nil)
	_ Signer   = (*gitlab)(nil)
)
