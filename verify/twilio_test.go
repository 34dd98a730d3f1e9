package verify

import "testing"

// Twilio's worked example from "Webhooks security"
// (twilio.com/docs/usage/webhooks/webhooks-security): auth token 12345,
// the URL and the POST parameters below give 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
// The other vectors are twilio-go's client/request_validator_test.go.
const (
	twilioToken = "12345"
	twilioURL   = "https://mycompany.com/myapp.php?foo=1&bar=2"
	twilioForm  = "To=%2B18005551212&CallSid=CA1234567890ABCDE&Digits=1234&From=%2B12349013030&Caller=%2B12349013030"
	twilioSig   = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="

	twilioJSON     = `{"property": "value", "boolean": true}`
	twilioBodyHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	// twilio-go's params map, written as the form body Twilio would post.
	twilioGoForm = "Digits=1234&CallSid=CA1234567890ABCDE&To=%2B18005551212&Caller=%2B14158675309&From=%2B14158675309&ReasonConferenceEnded=test&Reason=Participant"
)

func twilioRequest(t *testing.T, u, body, sig string, kv ...string) *Request {
	return withURL(t, request(body, unix(0), append([]string{"X-Twilio-Signature", sig}, kv...)...), u)
}

func TestTwilioKnownAnswer(t *testing.T) {
	v := Must(Twilio(twilioToken))
	accept(t, v, twilioRequest(t, twilioURL, twilioForm, twilioSig, "I-Twilio-Idempotency-Token", "b0ad7c4b-7cdd-4a30-a0b9-0ab10a2d7b4b"),
		Result{ID: "b0ad7c4b-7cdd-4a30-a0b9-0ab10a2d7b4b"})

	for _, c := range []struct{ name, url, body, sig string }{
		{"params", twilioURL, twilioGoForm, "vOEb5UThFn24KEfnOFLQY2AE5FY="},
		{"https with a port, signed without", "https://mycompany.com:1234/myapp.php?foo=1&bar=2", twilioGoForm, "vOEb5UThFn24KEfnOFLQY2AE5FY="},
		{"http", "http://mycompany.com/myapp.php?foo=1&bar=2", twilioGoForm, "n2xBNyzSW7rfYStDtOFiFMv7qNo="},
		{"http with a port, signed without", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", twilioGoForm, "n2xBNyzSW7rfYStDtOFiFMv7qNo="},
		{"json body", twilioURL + "&bodySHA256=" + twilioBodyHash, twilioJSON, "a9nBmqA0ju/hNViExpshrM61xv4="},
		{"json body, hash only", "https://mycompany.com/myapp.php?bodySHA256=" + twilioBodyHash, twilioJSON, "y77kIzt2vzLz71DgmJGsen2scGs="},
		{"form body", twilioURL, "property=value&boolean=true", "NBdBDr/T/lgjI+tlgpXjKZQZs/k="},
	} {
		t.Run(c.name, func(t *testing.T) { accept(t, v, twilioRequest(t, c.url, c.body, c.sig), Result{}) })
	}

	// twilio-go: parameters sorted wrongly (ReasonConferenceEnded before Reason).
	reject(t, v, twilioRequest(t, twilioURL, twilioGoForm, "95+Bu0JVPi0r/SsESZCVf0dWAjw="), ErrMismatch)
	reject(t, v, twilioRequest(t, twilioURL, twilioForm+"&Digits=9", twilioSig), ErrMismatch)
	reject(t, v, twilioRequest(t, "https://mycompany.com/myapp.php?foo=1&bar=3", twilioForm, twilioSig), ErrMismatch)
	reject(t, Must(Twilio("12346")), twilioRequest(t, twilioURL, twilioForm, twilioSig), ErrMismatch)
	// The JSON body changed: its hash no longer matches the signed URL.
	reject(t, v, twilioRequest(t, twilioURL+"&bodySHA256="+twilioBodyHash, `{"property": "evil", "boolean": true}`, "a9nBmqA0ju/hNViExpshrM61xv4="), ErrMismatch)
	reject(t, v, twilioRequest(t, twilioURL, twilioForm, ""), ErrMissing)
	reject(t, v, twilioRequest(t, twilioURL, twilioForm, "0/KCTR6DLp*"), ErrMalformed)
	reject(t, v, twilioRequest(t, twilioURL, "a=1;b=2", twilioSig), ErrMalformed)
	reject(t, v, request(twilioForm, unix(0), "X-Twilio-Signature", twilioSig), ErrConfig)
}

func TestTwilioSignJSON(t *testing.T) {
	s, err := NewSigner(Config{Scheme: "twilio", Secrets: []string{twilioToken}})
	if err != nil {
		t.Fatal(err)
	}
	r := withURL(t, request(twilioJSON, unix(0), "Content-Type", "application/json"), twilioURL)
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	if got := r.URL.Query().Get("bodySHA256"); got != twilioBodyHash {
		t.Fatalf("bodySHA256 = %q", got)
	}
	// Query.Encode sorts the parameters, so this URL differs from
	// twilio-go's; what matters is that it verifies.
	accept(t, Must(Twilio(twilioToken)), r, Result{ID: r.Header.Get("I-Twilio-Idempotency-Token")})
}
