package verify

import "testing"

// GitHub's own test values, from "Validating webhook deliveries"
// (docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries,
// section "Testing the webhook payload validation").
const (
	githubDocSecret = "It's a Secret to Everybody"
	githubDocBody   = "Hello, World!"
	githubDocSig256 = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestGitHubKnownAnswer(t *testing.T) {
	v := Must(GitHub(githubDocSecret))
	r := request(githubDocBody, unix(0),
		"X-Hub-Signature-256", githubDocSig256,
		"X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958",
		"X-GitHub-Event", "issues")
	accept(t, v, r, Result{ID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Type: "issues"})

	// One byte changed: "Hello, World?" is GitHub's own negative example.
	reject(t, v, request("Hello, World?", unix(0), "X-Hub-Signature-256", githubDocSig256), ErrMismatch)
	reject(t, Must(GitHub("It's a Secret to Everybody!")), request(githubDocBody, unix(0), "X-Hub-Signature-256", githubDocSig256), ErrMismatch)
	reject(t, v, request(githubDocBody, unix(0)), ErrMissing)
	reject(t, v, request(githubDocBody, unix(0), "X-Hub-Signature-256", githubDocSig256[7:]), ErrMalformed)
	reject(t, v, request(githubDocBody, unix(0), "X-Hub-Signature-256", "sha256=zz"), ErrMalformed)
	reject(t, v, request(githubDocBody, unix(0), "X-Hub-Signature-256", "sha1=757107ea0eb2509fc211221cce984b8a37570b6d"), ErrMalformed)
}

func TestGitHubLegacySHA1(t *testing.T) {
	// HMAC-SHA1("It's a Secret to Everybody", "Hello, World!"), computed
	// independently with `openssl dgst -sha1 -hmac`.
	const sig1 = "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"
	r := request(githubDocBody, unix(0), "X-Hub-Signature", sig1)
	// Off by default: a SHA-1 signature alone is a missing SHA-256 one.
	reject(t, Must(GitHub(githubDocSecret)), r, ErrMissing)
	v := mustNew(t, Config{Scheme: "github", Secrets: []string{githubDocSecret}, Options: map[string]string{"legacy_sha1": "true"}})
	accept(t, v, r, Result{})
	// With both headers the SHA-256 one decides.
	r.Header.Set("X-Hub-Signature-256", "sha256=00")
	reject(t, v, r, ErrMismatch)
	if _, err := New(Config{Scheme: "github", Secrets: []string{"s"}, Options: map[string]string{"legacy_sha1": "maybe"}}); err == nil {
		t.Fatal("legacy_sha1 maybe accepted")
	}
}
