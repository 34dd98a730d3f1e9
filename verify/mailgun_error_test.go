package verify

import (
	"errors"
	"strings"
	"testing"
)

// TestMailgunMultipartErrorHidesBody: mime/multipart quotes the body line
// it cannot parse; the error (which the operator's log shows) must not.
// FuzzVerify found it as a 401-byte error (testdata/fuzz/FuzzVerify/
// mailgun-multipart-error-quotes-body).
func TestMailgunMultipartErrorHidesBody(t *testing.T) {
	v := Must(Mailgun(mailgunKey))
	for _, body := range []string{
		"--XyZ\r\nsecret-body-line\r\n\r\nx\r\n--XyZ--\r\n",
		"secret-body-line\r\n--XyZ\r\n",
		"--XyZ\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nx\r\n--XyZsecret-body-line\r\n",
	} {
		_, err := v.Verify(request(body, unix(mailgunTS), "Content-Type", "multipart/form-data; boundary=XyZ"))
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrMissing) {
			t.Errorf("body %q: error %v, want ErrMalformed or ErrMissing", body, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("body %q: the error shows the body: %v", body, err)
		}
	}
}
