// Package verify checks webhook signatures on the raw bytes of a request,
// one file per provider scheme. It uses only the standard library, so any Go
// program can use it:
//
//	v, err := verify.New(verify.Config{Scheme: "github", Secrets: []string{secret}})
//	res, err := v.Verify(&verify.Request{Method: "POST", URL: u, Header: r.Header, Body: body})
//
// or, for one scheme, verify.Must(verify.Stripe(secret)).Verify(req).
//
// The schemes (Schemes lists them) and their Go constructors: github
// (GitHub), stripe (Stripe), standard-webhooks (StandardWebhooks), svix
// (Svix), slack (Slack), shopify (Shopify), twilio (Twilio), paddle
// (Paddle), square (Square), hubspot (HubSpot), mailgun (Mailgun), discord
// (Discord), gitlab (GitLab), hmac (HMAC, the generic scheme) and none
// (None). Each constructor's doc says what is checked, which Options the
// scheme takes (unknown ones are an ErrConfig) and where the delivery id
// and event type come from.
//
// The named providers built on them are reached through New only:
// presets.go holds the body-HMAC providers (linear, intercom, typeform,
// pagerduty, razorpay, gocardless, coinbase-commerce, vercel, sentry,
// bitbucket, jira, segment, lemon-squeezy, gitea, woocommerce), the
// Stripe-like mux and calendly, and the Svix / Standard Webhooks senders
// (clerk, resend, brex, openai, replicate); handshakes.go the providers
// with a setup handshake (zoom, twitter/x, meta/whatsapp/instagram,
// dropbox); tokens.go those that send a shared token (okta, msgraph,
// postmark); sendgrid.go and plaid.go the ECDSA senders.
//
// A handshake (Slack's url_verification, Discord's PING, Zoom's
// endpoint.url_validation, X's CRC, Meta's hub.challenge, Graph's
// validationToken, Dropbox's challenge, Okta's verification) verifies
// like any request and comes back as Result.Handshake, the exact answer
// to send; GetHandshaker marks the schemes whose handshake is a GET.
// Reason maps any error to a small fixed set for metrics; timestamp.go
// holds the one timestamp check, which cannot overflow.
//
// Every verifier compares in constant time, accepts up to MaxSecrets active
// secrets (rotation), reads at most MaxSignatures signatures from a header,
// checks signed timestamps against Config.Tolerance in both directions,
// fails closed on a missing or malformed header, and reports the provider's
// delivery id and event type when the scheme carries them; a body that is
// not JSON still verifies, its id and type just stay empty. Errors wrap one
// of the sentinel errors, so a caller can tell a stale timestamp from a
// wrong signature with errors.Is, and read as
// "<scheme>: <sentinel>: <which check failed and why>"; the text never
// contains a secret or an expected signature.
//
// NewSigner makes the other half: a Signer sets the headers the provider
// would send (and, for Twilio's bodySHA256 and Mailgun's in-body
// signature, the URL or body), so tests and the CLI can produce deliveries
// that Verify accepts.
package verify
