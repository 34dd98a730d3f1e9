package verify

import (
	"net/http"
	"testing"
)

// Slack's worked example from "Verifying requests from Slack"
// (api.slack.com/authentication/verifying-requests-from-slack): a slash
// command body signed at 1531420618 with the example signing secret.
const (
	slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackTS     = 1531420618
	slackBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func slackRequest(body, sig string, now int64) *Request {
	return request(body, unix(now), "X-Slack-Request-Timestamp", "1531420618", "X-Slack-Signature", sig)
}

func TestSlackKnownAnswer(t *testing.T) {
	v := Must(Slack(slackSecret))
	accept(t, v, slackRequest(slackBody, slackSig, slackTS), Result{Type: "slash_command"})
	reject(t, v, slackRequest(slackBody+"x", slackSig, slackTS), ErrMismatch)
	reject(t, Must(Slack("8f742231b10e8888abcd99yyyzzz85a6")), slackRequest(slackBody, slackSig, slackTS), ErrMismatch)
	reject(t, v, slackRequest(slackBody, slackSig, slackTS+301), ErrExpired)
	reject(t, v, slackRequest(slackBody, slackSig, slackTS-301), ErrExpired)
	reject(t, v, slackRequest(slackBody, slackSig[3:], slackTS), ErrMalformed)
	reject(t, v, slackRequest(slackBody, "", slackTS), ErrMissing)
	reject(t, v, request(slackBody, unix(slackTS), "X-Slack-Signature", slackSig), ErrMissing)
	reject(t, v, request(slackBody, unix(slackTS), "X-Slack-Signature", slackSig, "X-Slack-Request-Timestamp", "1531420618x"), ErrMalformed)
	// A GitHub-style signature under Slack's header name.
	reject(t, v, slackRequest(slackBody, "sha256=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", slackTS), ErrMalformed)
}

func TestSlackResult(t *testing.T) {
	s := Must(Slack(slackSecret)).(Signer)
	v := Must(Slack(slackSecret))
	for _, c := range []struct {
		body string
		want Result
	}{
		{`{"token":"x","team_id":"T1","event":{"type":"app_mention","user":"U1"},"type":"event_callback","event_id":"Ev08MFMKH6","event_time":1234567890}`, Result{ID: "Ev08MFMKH6", Type: "app_mention"}},
		{`{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`, Result{Type: "url_verification", Handshake: &Handshake{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}`)}}},
		{`{"type":"url_verification"}`, Result{Type: "url_verification"}},
		{`payload=%7B%22type%22%3A%22block_actions%22%7D`, Result{Type: "block_actions"}},
		{`not a form; or json`, Result{}},
	} {
		r := request(c.body, unix(slackTS))
		if err := s.Sign(r); err != nil {
			t.Fatal(err)
		}
		accept(t, v, r, c.want)
	}
	ch, ok := SlackChallenge([]byte(`{"token":"x","challenge":"3eZbrw1aBm2","type":"url_verification"}`))
	if !ok || ch != "3eZbrw1aBm2" {
		t.Fatalf("SlackChallenge = %q, %v", ch, ok)
	}
	if _, ok := SlackChallenge([]byte(`{"type":"event_callback","challenge":"x"}`)); ok {
		t.Fatal("SlackChallenge answered an event callback")
	}
}
