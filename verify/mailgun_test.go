package verify

import (
	"strings"
	"testing"
)

// Mailgun publishes no vector; its docs' sample timestamp and token were
// signed independently with a made-up key:
// printf '%s' "$timestamp$token" | openssl dgst -sha256 -hmac key-test-signing
const (
	mailgunKey   = "key-test-signing"
	mailgunTS    = 1529006854
	mailgunToken = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
	mailgunSig   = "ea80a3596ce790aa20ccea2a5ba5f2f725e02026d71bc488e9308afc89b5907b"
)

func mailgunJSON(sig string) string {
	return `{"signature":{"timestamp":"1529006854","token":"` + mailgunToken + `","signature":"` + sig + `"},` +
		`"event-data":{"event":"opened","timestamp":1529006854.329574,"id":"DACSsAdVSeGpLid7TN03WA"}}`
}

func TestMailgunKnownAnswer(t *testing.T) {
	v := Must(Mailgun(mailgunKey))
	want := Result{ID: mailgunToken, Type: "opened"}
	accept(t, v, request(mailgunJSON(mailgunSig), unix(mailgunTS), "Content-Type", "application/json"), want)
	accept(t, v, request(mailgunJSON(mailgunSig), unix(mailgunTS)), want)

	form := "timestamp=1529006854&token=" + mailgunToken + "&signature=" + mailgunSig + "&event=delivered&Message-Id=%3C20180614%40example.com%3E"
	accept(t, v, request(form, unix(mailgunTS), "Content-Type", "application/x-www-form-urlencoded"), Result{ID: mailgunToken, Type: "delivered"})

	multi := strings.ReplaceAll("--XyZ\r\nContent-Disposition: form-data; name=\"timestamp\"\r\n\r\n1529006854\r\n"+
		"--XyZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n"+mailgunToken+"\r\n"+
		"--XyZ\r\nContent-Disposition: form-data; name=\"attachment-1\"; filename=\"a.txt\"\r\n\r\nhello\r\n"+
		"--XyZ\r\nContent-Disposition: form-data; name=\"signature\"\r\n\r\n"+mailgunSig+"\r\n--XyZ--\r\n", "\r\n", "\r\n")
	accept(t, v, request(multi, unix(mailgunTS), "Content-Type", "multipart/form-data; boundary=XyZ"), Result{ID: mailgunToken})

	reject(t, v, request(mailgunJSON(mailgunSig[:63]+"c"), unix(mailgunTS)), ErrMismatch)
	reject(t, Must(Mailgun("key-test-signinh")), request(mailgunJSON(mailgunSig), unix(mailgunTS)), ErrMismatch)
	// Mailgun retries with the original signature for 8 hours: a retry
	// 7h59m later passes, 8h01m later does not.
	accept(t, v, request(mailgunJSON(mailgunSig), unix(mailgunTS+8*3600-60)), want)
	reject(t, v, request(mailgunJSON(mailgunSig), unix(mailgunTS+8*3600+60)), ErrExpired)
	reject(t, v, request(mailgunJSON(mailgunSig), unix(mailgunTS-8*3600-60)), ErrExpired)
	reject(t, Must(New(Config{Scheme: "mailgun", Secrets: []string{mailgunKey}, Tolerance: 300e9})), request(mailgunJSON(mailgunSig), unix(mailgunTS+301)), ErrExpired)
	reject(t, v, request(`{"event-data":{}}`, unix(mailgunTS)), ErrMissing)
	reject(t, v, request(mailgunJSON("zz"), unix(mailgunTS)), ErrMalformed)
	reject(t, v, request(`{"signature":`, unix(mailgunTS)), ErrMalformed)
	reject(t, v, request("", unix(mailgunTS)), ErrMissing)
	reject(t, v, request(multi, unix(mailgunTS), "Content-Type", "multipart/form-data"), ErrMalformed)
}
