package verify

import "time"

// Providers that sign the body with a plain HMAC in one header are fixed
// forms of the generic hmac scheme: each preset below is the hmac scheme
// with its options set, under the provider's name. A preset takes secrets
// and a tolerance, no options. Sources of each form (header, encoding,
// id and type) are the provider's webhook documentation, cited in
// testdata/vectors/<scheme>.json and the README's provider table.
var hmacPresets = map[string]map[string]string{
	// linear.app/developers/webhooks and @linear/sdk's webhooks/client.ts:
	// Linear-Signature is the hex HMAC-SHA256 of the body, whose
	// webhookTimestamp (milliseconds) the SDK requires within a minute;
	// Linear-Delivery and Linear-Event headers.
	"linear": {"header": "Linear-Signature", "timestamp_field": "webhookTimestamp", "timestamp_unit": "ms", "id_header": "Linear-Delivery", "type_header": "Linear-Event"},
	// developers.intercom.com, "Webhooks > Signed notifications":
	// X-Hub-Signature is "sha1=" + hex HMAC-SHA1 of the body under the
	// app's client secret; the notification's "id" and "topic".
	"intercom": {"header": "X-Hub-Signature", "prefix": "sha1=", "algorithm": "sha1", "id_field": "id", "type_field": "topic"},
	// typeform.com/developers/webhooks/secure-your-webhooks:
	// Typeform-Signature is "sha256=" + base64 HMAC-SHA256 of the body.
	"typeform": {"header": "Typeform-Signature", "prefix": "sha256=", "encoding": "base64", "id_field": "event_id", "type_field": "event_type"},
	// developer.pagerduty.com, "Verifying Signatures" (webhooks v3):
	// X-PagerDuty-Signature holds "v1=<hex>" items separated by commas,
	// one per active secret, HMAC-SHA256 of the body.
	"pagerduty": {"header": "X-PagerDuty-Signature", "prefix": "v1=", "id_field": "event.id", "type_field": "event.event_type"},
	// razorpay.com/docs/webhooks/validate-test: X-Razorpay-Signature is the
	// hex HMAC-SHA256 of the body; x-razorpay-event-id is the delivery id.
	"razorpay": {"header": "X-Razorpay-Signature", "id_header": "X-Razorpay-Event-Id", "type_field": "event"},
	// developer.gocardless.com, "Webhooks > Signing": Webhook-Signature is
	// the hex HMAC-SHA256 of the body; the body holds a batch of events.
	"gocardless": {"header": "Webhook-Signature", "id_field": "meta.webhook_id", "type_field": "events.0.resource_type"},
	// docs.cloud.coinbase.com/commerce, "Webhooks > Securing":
	// X-CC-Webhook-Signature is the hex HMAC-SHA256 of the body.
	"coinbase-commerce": {"header": "X-CC-Webhook-Signature", "id_field": "event.id", "type_field": "event.type"},
	// vercel.com/docs/webhooks/webhooks-api, "Securing webhooks":
	// x-vercel-signature is the hex HMAC-SHA1 of the body.
	"vercel": {"header": "X-Vercel-Signature", "algorithm": "sha1", "id_field": "id", "type_field": "type"},
	// docs.sentry.io/organization/integrations/integration-platform/webhooks:
	// Sentry-Hook-Signature is the hex HMAC-SHA256 of the body under the
	// client secret; Request-ID and Sentry-Hook-Resource headers.
	"sentry": {"header": "Sentry-Hook-Signature", "id_header": "Request-ID", "type_header": "Sentry-Hook-Resource"},
	// support.atlassian.com/bitbucket-cloud, "Secure webhooks":
	// X-Hub-Signature is "sha256=" + hex HMAC-SHA256 of the body.
	"bitbucket": {"header": "X-Hub-Signature", "prefix": "sha256=", "id_header": "X-Request-UUID", "type_header": "X-Event-Key"},
	// developer.atlassian.com/cloud/jira/platform/webhooks, "Secure admin
	// webhooks": X-Hub-Signature is "sha256=" + hex HMAC-SHA256 of the body.
	"jira": {"header": "X-Hub-Signature", "prefix": "sha256=", "id_header": "X-Atlassian-Webhook-Identifier", "type_field": "webhookEvent"},
	// segment.com/docs/connections/destinations/catalog/webhooks: X-Signature
	// is the hex HMAC-SHA1 of the body under the shared secret.
	"segment": {"header": "X-Signature", "algorithm": "sha1", "id_field": "messageId", "type_field": "type"},
	// docs.lemonsqueezy.com/help/webhooks/signing-requests: X-Signature is
	// the hex HMAC-SHA256 of the body; X-Event-Name names the event.
	"lemon-squeezy": {"header": "X-Signature", "type_header": "X-Event-Name", "id_field": "data.id"},
	// docs.gitea.com/usage/webhooks: X-Gitea-Signature is the hex
	// HMAC-SHA256 of the body; X-Gitea-Delivery and X-Gitea-Event.
	"gitea": {"header": "X-Gitea-Signature", "id_header": "X-Gitea-Delivery", "type_header": "X-Gitea-Event"},
	// woocommerce.github.io/woocommerce-rest-api-docs, "Webhooks":
	// X-WC-Webhook-Signature is the base64 HMAC-SHA256 of the body.
	"woocommerce": {"header": "X-WC-Webhook-Signature", "encoding": "base64", "id_header": "X-WC-Webhook-Delivery-ID", "type_header": "X-WC-Webhook-Topic"},
}

// presetConstructor makes the constructor of an hmac preset.
func presetConstructor(scheme string, options map[string]string) Constructor {
	return func(c Config) (Verifier, error) {
		tol, err := checkConfig(c)
		if err != nil {
			return nil, err
		}
		return newGeneric(scheme, c.Secrets, tol, options)
	}
}

// tv1Presets sign like Stripe: a header "t=<unix>,v1=<hex>[,v1=...]",
// each v1 the HMAC-SHA256 of "<t>.<body>".
var tv1Presets = map[string]tv1Form{
	// docs.mux.com/core/verify-webhook-signatures: Mux-Signature; the
	// event's "id" and "type".
	"mux": {header: "Mux-Signature", idField: "id", typeField: "type"},
	// developer.calendly.com/api-docs, "Webhook Signatures":
	// Calendly-Webhook-Signature; the type is "event", no delivery id.
	"calendly": {header: "Calendly-Webhook-Signature", typeField: "event"},
}

// svixPresets are providers that send through Svix (svix-* headers) or
// sign with Standard Webhooks (webhook-* headers): each reads both
// families, as Svix's libraries do, and takes "whsec_..." secrets.
var svixPresets = map[string]*stdHeaders{
	// clerk.com/docs/webhooks/sync-data: Clerk sends through Svix.
	"clerk": {id: "svix-id", timestamp: "svix-timestamp", signature: "svix-signature", fallback: standardHeaders},
	// resend.com/docs/webhooks/verify-webhooks-requests: through Svix.
	"resend": {id: "svix-id", timestamp: "svix-timestamp", signature: "svix-signature", fallback: standardHeaders},
	// developer.brex.com, "Webhooks": webhook-id/-timestamp/-signature.
	"brex": {id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature", fallback: svixHeaders},
	// platform.openai.com/docs/guides/webhooks: Standard Webhooks.
	"openai": {id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature", fallback: svixHeaders},
	// replicate.com/docs/topics/webhooks/verify-webhook: Standard Webhooks.
	"replicate": {id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature", fallback: svixHeaders},
}

func init() {
	for name, o := range hmacPresets {
		Register(name, presetConstructor(name, o))
	}
	for name, f := range tv1Presets {
		f.scheme = name
		Register(name, f.constructor())
	}
	for name, h := range svixPresets {
		h.scheme = name
		Register(name, func(c Config) (Verifier, error) { return newStdWebhooks(c, h) })
	}
}

// schemeTolerances are the default tolerances of the schemes whose
// provider resends a delivery's original signature when it retries: the
// default must cover the provider's retry horizon, and replay protection
// within it comes from deduplicating the signed delivery id.
var schemeTolerances = map[string]time.Duration{
	// Mailgun retries a webhook over 8 hours (5 min, 10 min, 15 min, 1 h,
	// 2 h, 4 h: documentation.mailgun.com, "Webhooks") with the body, and
	// so the signature, of the first attempt. Its event-data.id is signed
	// with it only by the TLS channel; dedup on it needs dedup_window 8h.
	"mailgun": 8 * time.Hour,
}

// SchemeTolerance is the tolerance a scheme uses when the Config leaves it
// zero: DefaultTolerance, or longer where the provider resends the
// original signature on retries (mailgun: 8h). The gateway's dedup window
// must be at least as long for dedup to stop replays inside it.
func SchemeTolerance(scheme string) time.Duration {
	if d, ok := schemeTolerances[scheme]; ok {
		return d
	}
	return DefaultTolerance
}

// toleranceOr is c's tolerance, or def when c leaves it zero.
func toleranceOr(c Config, def time.Duration) Config {
	if c.Tolerance == 0 {
		c.Tolerance = def
	}
	return c
}
