package verify

func init() {
	Register("svix", func(c Config) (Verifier, error) { return newStdWebhooks(c, svixHeaders) })
}

// Svix verifies webhooks sent through Svix (Clerk, Resend, Replicate and
// others): the Standard Webhooks scheme under svix-id, svix-timestamp and
// svix-signature, falling back to the webhook-* headers as Svix's own
// libraries do. Secrets are the endpoint's "whsec_..." signing secrets. The
// delivery id is svix-id, the type the body's "type". No options.
func Svix(secrets ...string) (Verifier, error) {
	return newStdWebhooks(Config{Scheme: "svix", Secrets: secrets}, svixHeaders)
}

var svixHeaders = &stdHeaders{scheme: "svix", id: "svix-id", timestamp: "svix-timestamp", signature: "svix-signature", fallback: standardHeaders}
