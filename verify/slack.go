package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"time"
)

func init() { Register("slack", newSlack) }

// Slack verifies Slack requests (Events API, interactivity, slash
// commands): X-Slack-Signature is "v0=" and the hex HMAC-SHA256 of
// "v0:<X-Slack-Request-Timestamp>:<body>" under the app's signing secret;
// the timestamp must be within the tolerance.
//
// The delivery id is the Events API "event_id" (retries carry the same
// one, with X-Slack-Retry-Num). The type is the inner "event.type" for
// event callbacks, else the top-level "type" ("url_verification",
// "block_actions"...; for interactivity the type of the form's payload),
// or "slash_command" for a slash command. No options.
//
// A signed url_verification request is Slack's check of a Request URL: its
// Result carries the Handshake {"challenge": "<challenge>"} (200,
// application/json), which the gateway answers instead of storing it.
func Slack(secrets ...string) (Verifier, error) {
	return newSlack(Config{Scheme: "slack", Secrets: secrets})
}

type slack struct {
	ring keyring
	tol  time.Duration
}

func newSlack(c Config) (Verifier, error) {
	ring, tol, err := rawRing(c, sha256.New)
	if err != nil {
		return nil, err
	}
	return &slack{ring, tol}, nil
}

var (
	slackVersion = []byte("v0:")
	colon        = []byte{':'}
)

// Verify implements Verifier.
func (s *slack) Verify(r *Request) (Result, error) {
	sig, err := decodeOne("slack", "X-Slack-Signature", r.Header.Get("X-Slack-Signature"), "v0=", hex.DecodeString)
	if err != nil {
		return Result{}, err
	}
	ts := r.Header.Get("X-Slack-Request-Timestamp")
	if err := checkTimestamp("slack", "X-Slack-Request-Timestamp", ts, time.Second, r.now(), s.tol); err != nil {
		return Result{}, err
	}
	if !s.ring.match([][]byte{sig}, slackVersion, []byte(ts), colon, r.Body) {
		return Result{}, s.ring.mismatch("slack", 1)
	}
	res := slackResult(r.Body)
	if challenge, ok := SlackChallenge(r.Body); ok && res.Type == "url_verification" {
		res.Handshake = jsonHandshake(http.StatusOK, map[string]string{"challenge": challenge})
	}
	return res, nil
}

// slackResult reads the delivery id and type from an Events API body, an
// interactivity form (its JSON "payload") or a slash command form.
func slackResult(body []byte) Result {
	if b := bytes.TrimSpace(body); len(b) == 0 || b[0] != '{' {
		form, err := url.ParseQuery(string(body))
		switch {
		case err != nil:
			return Result{}
		case form.Get("payload") != "":
			body = []byte(form.Get("payload"))
		case form.Get("command") != "":
			return Result{Type: "slash_command"}
		}
	}
	f := fields(body, "event_id", "type", "event")
	res := Result{ID: text(f[0]), Type: text(f[1])}
	if inner := text(fields(f[2], "type")[0]); res.Type == "event_callback" && inner != "" {
		res.Type = inner
	}
	return res
}

// SlackChallenge returns the challenge of a Slack url_verification
// request, which the receiver must echo back for Slack to accept the
// Request URL. Call it only on a body that Verify accepted.
func SlackChallenge(body []byte) (challenge string, ok bool) {
	f := fields(body, "type", "challenge")
	challenge = text(f[1])
	return challenge, text(f[0]) == "url_verification" && challenge != ""
}

var (
	_ Verifier = (*slack)(nil)
	_ Signer   = (*slack)(nil)
)

// Sign implements Signer.
func (s *slack) Sign(r *Request) error {
	ts := unixText(r.now(), time.Second)
	h := headers(r)
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(s.ring.sign(slackVersion, []byte(ts), colon, r.Body)))
	return nil
}
