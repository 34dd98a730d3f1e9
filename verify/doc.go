// Package verify checks webhook signatures on the raw bytes of a request,
// one file per provider scheme. It uses only the standard library, so any Go
// program can use it:
//
//	v, err := verify.New(verify.Config{Scheme: "github", Secrets: []string{secret}})
//	res, err := v.Verify(&verify.Request{Method: "POST", URL: u, Header: r.Header, Body: body})
//
// or, for one scheme, verify.Must(verify.Stripe(secret)).Verify(req).
//
// Every verifier compares in constant time, accepts up to MaxSecrets active
// secrets (rotation), reads at most MaxSignatures signatures from a header,
// checks signed timestamps against Config.Tolerance, fails closed on a
// missing or malformed header, and reports the provider's delivery id and
// event type when the scheme carries them. Errors wrap one of the sentinel
// errors, so a caller can tell a stale timestamp from a wrong signature with
// errors.Is, and read "<scheme>: <sentinel>: <which check failed and why>";
// the text never contains a secret or an expected signature.
//
// NewSigner makes the other half: a Signer sets the headers the provider
// would send, so tests and the CLI can produce deliveries Verify accepts.
package verify
