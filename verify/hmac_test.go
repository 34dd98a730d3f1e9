package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

// RFC 4231 test case 2 (HMAC-SHA256 and -SHA512) and RFC 2202 test case 2
// (HMAC-SHA1): key "Jefe", data "what do ya want for nothing?".
const (
	rfcKey    = "Jefe"
	rfcData   = "what do ya want for nothing?"
	rfcSHA1   = "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
	rfcSHA256 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	rfcSHA512 = "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
)

func genericV(t *testing.T, kv ...string) Verifier {
	t.Helper()
	o := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		o[kv[i]] = kv[i+1]
	}
	v, err := HMAC(o, rfcKey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHMACKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   []string
		header string
	}{
		{"sha1", []string{"header", "X-Sig", "algorithm", "sha1"}, rfcSHA1},
		{"sha256 default", []string{"header", "X-Sig"}, rfcSHA256},
		{"sha512", []string{"header", "X-Sig", "algorithm", "sha512"}, rfcSHA512},
		{"prefix", []string{"header", "X-Sig", "prefix", "sha256="}, "sha256=" + rfcSHA256},
		{"upper hex", []string{"header", "X-Sig"}, strings.ToUpper(rfcSHA256)},
		{"base64", []string{"header", "X-Sig", "encoding", "base64"}, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="},
		{"base64 unpadded", []string{"header", "X-Sig", "encoding", "base64"}, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM"},
		{"base64url", []string{"header", "X-Sig", "encoding", "base64url"}, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="},
		{"several", []string{"header", "X-Sig", "prefix", "v1="}, "v1=00ff, v1=" + rfcSHA256},
		{"hex secret", []string{"header", "X-Sig", "secret_encoding", "hex"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "hex secret" {
				v, err := HMAC(map[string]string{"header": "X-Sig", "secret_encoding": "hex"}, "4a656665") // "Jefe"
				if err != nil {
					t.Fatal(err)
				}
				accept(t, v, request(rfcData, unix(0), "X-Sig", rfcSHA256), Result{})
				return
			}
			accept(t, genericV(t, c.opts...), request(rfcData, unix(0), "X-Sig", c.header), Result{})
		})
	}
	v := genericV(t, "header", "X-Sig", "prefix", "sha256=")
	reject(t, v, request(rfcData+".", unix(0), "X-Sig", "sha256="+rfcSHA256), ErrMismatch)
	reject(t, v, request(rfcData, unix(0), "X-Sig", rfcSHA256), ErrMalformed)
	reject(t, v, request(rfcData, unix(0), "X-Sig", "sha256=xyz"), ErrMalformed)
	reject(t, v, request(rfcData, unix(0)), ErrMissing)
	reject(t, genericV(t, "header", "X-Sig", "algorithm", "sha1"), request(rfcData, unix(0), "X-Sig", rfcSHA256), ErrMismatch)
}

func TestHMACTemplate(t *testing.T) {
	// A Standard-Webhooks-like layout written as a template: the
	// standard-webhooks vector must verify through the generic scheme.
	v, err := HMAC(map[string]string{
		"header": "webhook-signature", "prefix": "v1,", "encoding": "base64", "secret_encoding": "base64",
		"timestamp_header": "webhook-timestamp", "template": "{header.webhook-id}.{timestamp}.{body}",
		"id_header": "webhook-id", "type_field": "test",
	}, strings.TrimPrefix(swSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	accept(t, v, swRequest(swSig, swTS), Result{ID: swID, Type: "2432232314"})
	reject(t, v, swRequest(swSig, swTS+301), ErrExpired)
	reject(t, v, request(swBody, unix(swTS), "webhook-timestamp", "1614265330", "webhook-signature", swSig), ErrMissing)

	// As the Caddyfile adapter leaves the template after its shorthands.
	v, err = HMAC(map[string]string{
		"header": "webhook-signature", "prefix": "v1,", "encoding": "base64", "secret_encoding": "base64",
		"timestamp_header": "webhook-timestamp", "template": "{http.request.header.webhook-id}.{timestamp}.{body}",
	}, strings.TrimPrefix(swSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	accept(t, v, swRequest(swSig, swTS), Result{})

	// {method} and {url}, and milliseconds.
	o := map[string]string{"header": "X-Sig", "timestamp_header": "X-Ts", "timestamp_unit": "ms", "template": "{method} {url}\n{timestamp}\n{body}", "id_field": "data.id"}
	s, err := NewSigner(Config{Scheme: "hmac", Secrets: []string{"k"}, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	r := withURL(t, request(`{"data":{"id":"d1"}}`, unix(1700000000)), "https://example.com/hook?x=1")
	if err := s.Sign(r); err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("X-Ts") != "1700000000000" {
		t.Fatalf("X-Ts %q", r.Header.Get("X-Ts"))
	}
	w := mustNew(t, Config{Scheme: "hmac", Secrets: []string{"k"}, Options: o})
	accept(t, w, r, Result{ID: "d1"})
	r.Method = "PUT"
	reject(t, w, r, ErrMismatch)
	r.Method, r.URL = "POST", nil
	reject(t, w, r, ErrConfig)
}

func TestHMACConfig(t *testing.T) {
	for _, o := range []map[string]string{
		{},
		{"header": "X", "algorithm": "md5"},
		{"header": "X", "encoding": "base32"},
		{"header": "X", "template": "{timestamp}"},
		{"header": "X", "template": "{timestamp}.{body}"},
		{"header": "X", "timestamp_header": "T", "template": "{body}"},
		{"header": "X", "template": "{bodies}"},
		{"header": "X", "template": "{body"},
		{"header": "X", "template": "{header.}{body}"},
		{"header": "X", "timestamp_unit": "us", "timestamp_header": "T"},
		{"header": "X", "secret_encoding": "base64url"},
		{"header": "X", "secret_encoding": "hex"},
		{"header": "X", "algoritm": "sha1"},
	} {
		if _, err := New(Config{Scheme: "hmac", Secrets: []string{"zz"}, Options: o}); err == nil {
			t.Errorf("options %v accepted", o)
		}
	}
}

// TestDecodeOneHex: decoding into a buffer answers as decodeOne with
// hex.DecodeString does, for signatures that fit and ones that do not.
func TestDecodeOneHex(t *testing.T) {
	for _, v := range []string{
		"sha256=" + strings.Repeat("ab", 32), "sha256=" + strings.Repeat("AB", 32), " sha256=0f ",
		"sha256=" + strings.Repeat("ab", 40), "sha256=abc", "sha256=zz", "sha256=", "md5=00", "",
	} {
		var buf [32]byte
		got, gotErr := decodeOneHex("github", "X-Hub-Signature-256", v, "sha256=", buf[:])
		want, wantErr := decodeOne("github", "X-Hub-Signature-256", v, "sha256=", hex.DecodeString)
		if !bytes.Equal(got, want) || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Errorf("%q: got %x, %v; want %x, %v", v, got, gotErr, want, wantErr)
		}
	}
}

// TestKeyringPooledMatch: a pooled HMAC gives the same answers as a new
// one, again and again, under every key.
func TestKeyringPooledMatch(t *testing.T) {
	keys := [][]byte{[]byte("k1"), []byte("k2")}
	ring := newKeyring(keys, sha256.New)
	body := []byte(`{"a":1}`)
	for range 3 {
		for _, key := range keys {
			sig := keyring{keys: [][]byte{key}, hash: sha256.New}.mac(key, body)
			if !ring.match([][]byte{sig}, body) {
				t.Fatalf("signature under %s not matched", key)
			}
		}
		if ring.match([][]byte{make([]byte, 32)}, body) {
			t.Fatal("zero signature matched")
		}
	}
}
