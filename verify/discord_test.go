package verify

import (
	"encoding/hex"
	"net/http"
	"testing"
)

// Discord publishes no vector, so the key pair is RFC 8032's Ed25519
// TEST 1 (section 7.1) and the signature over timestamp + body was made
// independently with `openssl pkeyutl -sign -rawin` from that seed.
const (
	discordSeed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	discordPublic = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	discordTS     = 1700000000
	discordBody   = `{"type":1,"id":"1118461231548551229","application_id":"11","token":"tok","version":1}`
	discordSig    = "446de6cde410ee6247328c29fd8eb98dd981f9a1e29916ac903904a42b19f7ba34dfdbef7e40dabe94597571d17342c7c8eb68907922c843ebee6595f3776a0a"
)

func discordRequest(body, sig string, now int64) *Request {
	return request(body, unix(now), "X-Signature-Ed25519", sig, "X-Signature-Timestamp", "1700000000")
}

func TestDiscordKnownAnswer(t *testing.T) {
	v := Must(Discord(discordPublic))
	accept(t, v, discordRequest(discordBody, discordSig, discordTS), Result{ID: "1118461231548551229", Type: "PING", Handshake: pong})
	reject(t, v, discordRequest(discordBody+" ", discordSig, discordTS), ErrMismatch)
	reject(t, Must(Discord("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")), discordRequest(discordBody, discordSig, discordTS), ErrMismatch)
	reject(t, v, discordRequest(discordBody, discordSig, discordTS+301), ErrExpired)
	reject(t, v, discordRequest(discordBody, discordSig, discordTS-301), ErrExpired)
	reject(t, v, discordRequest(discordBody, discordSig[:126], discordTS), ErrMalformed)
	reject(t, v, discordRequest(discordBody, "", discordTS), ErrMissing)
	reject(t, v, request(discordBody, unix(discordTS), "X-Signature-Ed25519", discordSig), ErrMissing)

	// Signing with the private key (seed + public key) gives the same
	// signature, Ed25519 being deterministic.
	s, err := NewSigner(Config{Scheme: "discord", Secrets: []string{discordSeed + discordPublic}})
	if err != nil {
		t.Fatal(err)
	}
	r := request(discordBody, unix(discordTS))
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Get("X-Signature-Ed25519"); got != discordSig {
		t.Fatalf("signature %s", got)
	}
	if _, err := NewSigner(Config{Scheme: "discord", Secrets: []string{discordPublic}}); err == nil {
		t.Fatal("NewSigner accepted a public key")
	}
	if _, err := Discord("abcd"); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := Discord(hex.EncodeToString(make([]byte, 32)) + "zz"); err == nil {
		t.Fatal("non-hex key accepted")
	}
}

// pong is the answer to an interaction PING, and noContent to a webhook
// events PING (discord.com/developers/docs/interactions/receiving-and-responding
// and .../events/webhook-events).
var (
	pong      = &Handshake{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"type":1}`)}
	noContent = &Handshake{Status: 204, Header: http.Header{}}
)

// TestDiscordHandshakes: both kinds of PING are answered as Discord
// expects, and nothing else gets a handshake.
func TestDiscordHandshakes(t *testing.T) {
	s := Must(Discord(discordSeed + discordPublic)).(Signer)
	v := Must(Discord(discordPublic))
	for _, c := range []struct {
		body string
		want Result
	}{
		{`{"version":1,"application_id":"11","type":0}`, Result{Type: "PING", Handshake: noContent}},
		{`{"id":"7","type":1,"token":"t","version":1}`, Result{ID: "7", Type: "PING", Handshake: pong}},
		{`{"id":"8","type":2,"token":"t"}`, Result{ID: "8", Type: "APPLICATION_COMMAND"}},
		{`{"version":1,"application_id":"11","type":1,"event":{"type":"ENTITLEMENT_CREATE"}}`, Result{Type: "ENTITLEMENT_CREATE"}},
	} {
		r := request(c.body, unix(discordTS))
		if err := s.Sign(r); err != nil {
			t.Fatal(err)
		}
		accept(t, v, r, c.want)
	}
}

func TestDiscordResult(t *testing.T) {
	for _, c := range []struct {
		body string
		want Result
	}{
		{`{"version":1,"application_id":"11","type":0}`, Result{Type: "PING"}},
		{`{"version":1,"application_id":"11","type":1,"event":{"type":"APPLICATION_AUTHORIZED","timestamp":"2024-10-18T14:42:53.064834","data":{}}}`, Result{Type: "APPLICATION_AUTHORIZED"}},
		{`{"id":"42","type":2,"token":"t","data":{"name":"ping"}}`, Result{ID: "42", Type: "APPLICATION_COMMAND"}},
		{`{"id":"42","type":9,"token":"t"}`, Result{ID: "42"}},
		{`not json`, Result{}},
	} {
		if got := discordResult([]byte(c.body)); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.body, got, c.want)
		}
	}
}
