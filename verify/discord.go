package verify

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"
)

func init() { Register("discord", newDiscord) }

// Discord verifies Discord interactions and webhook events:
// X-Signature-Ed25519 is the hex Ed25519 signature of
// X-Signature-Timestamp + body, checked against the application's public
// key (64 hex digits, "Public Key" in the Developer Portal); the timestamp
// must be within the tolerance.
//
// The delivery id is the interaction's "id". The type is the webhook
// event's "event.type" (APPLICATION_AUTHORIZED, ENTITLEMENT_CREATE...),
// "PING" for the endpoint check of either kind, or the interaction type
// (APPLICATION_COMMAND, MESSAGE_COMPONENT...). Discord requires a PING to
// be answered: 204 for webhook events, {"type":1} for interactions.
//
// A secret of 128 hex digits is an Ed25519 private key (seed and public
// key), which verifies and signs; Discord never hands one out, it is for
// tests and the CLI. No options.
func Discord(publicKeys ...string) (Verifier, error) {
	return newDiscord(Config{Scheme: "discord", Secrets: publicKeys})
}

type discord struct {
	pubs []ed25519.PublicKey
	priv ed25519.PrivateKey
	tol  time.Duration
}

func newDiscord(c Config) (Verifier, error) {
	tol, err := checkConfig(c)
	if err != nil {
		return nil, err
	}
	d := &discord{tol: tol}
	for i, s := range c.Secrets {
		key, err := hex.DecodeString(s)
		switch {
		case err == nil && len(key) == ed25519.PublicKeySize:
			d.pubs = append(d.pubs, key)
		case err == nil && len(key) == ed25519.PrivateKeySize:
			priv := ed25519.NewKeyFromSeed(key[:ed25519.SeedSize])
			d.pubs = append(d.pubs, priv.Public().(ed25519.PublicKey))
			if i == 0 {
				d.priv = priv
			}
		default:
			return nil, fmt.Errorf("%w: scheme discord: key %d is not 64 hex digits (public key) or 128 (private key)", ErrConfig, i+1)
		}
	}
	return d, nil
}

// discordTypes names interaction types (discord.com/developers/docs,
// "Interaction Type").
var discordTypes = map[string]string{
	"1": "PING", "2": "APPLICATION_COMMAND", "3": "MESSAGE_COMPONENT",
	"4": "APPLICATION_COMMAND_AUTOCOMPLETE", "5": "MODAL_SUBMIT",
}

// Verify implements Verifier.
func (d *discord) Verify(r *Request) (Result, error) {
	sig, err := decodeOne("discord", "X-Signature-Ed25519", r.Header.Get("X-Signature-Ed25519"), "", hex.DecodeString)
	if err != nil {
		return Result{}, err
	}
	if len(sig) != ed25519.SignatureSize {
		return Result{}, fail("discord", ErrMalformed, "X-Signature-Ed25519 is %d bytes, not %d", len(sig), ed25519.SignatureSize)
	}
	ts := r.Header.Get("X-Signature-Timestamp")
	if err := checkTimestamp("discord", "X-Signature-Timestamp", ts, time.Second, r.now(), d.tol); err != nil {
		return Result{}, err
	}
	msg := joinParts([][]byte{[]byte(ts), r.Body})
	for _, pub := range d.pubs {
		if ed25519.Verify(pub, msg, sig) {
			return discordHandshake(discordResult(r.Body)), nil
		}
	}
	return Result{}, fail("discord", ErrMismatch, "X-Signature-Ed25519 matches none of %d public key(s)", len(d.pubs))
}

// discordResult tells interactions (which carry a token) from webhook
// events (which carry a version and, but for PING, an event).
func discordResult(body []byte) Result {
	f := fields(body, "id", "type", "token", "event")
	res := Result{ID: text(f[0])}
	switch typ, event := text(f[1]), text(fields(f[3], "type")[0]); {
	case event != "":
		res.Type = event
	case f[2] != nil && typ == "1":
		res.Type = "PING_INTERACTION" // discordHandshake answers it and names it PING
	case f[2] != nil:
		res.Type = discordTypes[typ]
	case typ == "0":
		res.Type = "PING"
	}
	return res
}

// discordHandshake answers Discord's endpoint checks: a webhook events
// PING gets 204 No Content; an interaction PING gets the PONG
// {"type":1} (discord.com/developers/docs/interactions/receiving-and-responding,
// "Receiving an Interaction"; .../events/webhook-events, "Responding to a
// Ping").
func discordHandshake(res Result) Result {
	switch res.Type {
	case "PING":
		res.Handshake = &Handshake{Status: http.StatusNoContent, Header: http.Header{}}
	case "PING_INTERACTION":
		res.Type = "PING"
		res.Handshake = jsonHandshake(http.StatusOK, map[string]int{"type": 1})
	}
	return res
}

var (
	_ Verifier = (*discord)(nil)
	_ Signer   = (*discord)(nil)
)

func (d *discord) signable() error {
	if d.priv == nil {
		return fmt.Errorf("%w: scheme discord signs with a private key (128 hex digits), the first key is a public key", ErrConfig)
	}
	return nil
}

// Sign implements Signer.
func (d *discord) Sign(r *Request) error {
	if err := d.signable(); err != nil {
		return err
	}
	ts := unixText(r.now(), time.Second)
	h := headers(r)
	h.Set("X-Signature-Timestamp", ts)
	h.Set("X-Signature-Ed25519", hex.EncodeToString(ed25519.Sign(d.priv, joinParts([][]byte{[]byte(ts), r.Body}))))
	return nil
}
