package verify

import (
	"encoding/json"
	"net/http"
)

// jsonHandshake is a handshake answer with a JSON body. v is a map or
// struct of strings and numbers, which always marshals.
func jsonHandshake(status int, v any) *Handshake {
	b, _ := json.Marshal(v)
	return &Handshake{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: b}
}

// textHandshake echoes a provider's challenge as text/plain, with
// X-Content-Type-Options: nosniff so a browser never reads the echoed text
// as HTML.
func textHandshake(challenge string) *Handshake {
	return &Handshake{
		Status: http.StatusOK,
		Header: http.Header{"Content-Type": {"text/plain"}, "X-Content-Type-Options": {"nosniff"}},
		Body:   []byte(challenge),
	}
}
