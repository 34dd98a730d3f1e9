package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

func init() { Register("hmac", newHMAC) }

// HMAC builds the generic scheme for providers without a scheme of their
// own. It takes its shape from options, all but header optional:
//
//	header            the header holding the signature (required)
//	algorithm         sha1, sha256 (default) or sha512
//	encoding          hex (default), base64 or base64url
//	prefix            text before the signature, such as "sha256="
//	timestamp_header  a header holding a Unix timestamp that must be
//	                  within the tolerance and is part of the signed content
//	timestamp_field   a dotted JSON path to a Unix timestamp in the
//	                  (signed) body that must be within the tolerance, for
//	                  providers that stamp the body rather than a header
//	timestamp_unit    s (default) or ms, for either
//	template          the signed content: placeholders {body},
//	                  {timestamp}, {method}, {url} and {header.<Name>};
//	                  default "{body}", or "{timestamp}.{body}" with a
//	                  timestamp_header. It must contain {body}.
//	secret_encoding   how secrets are written: raw (default), hex or base64
//	id_header         the header holding the delivery id
//	type_header       the header holding the event type
//	id_field          a dotted JSON path to the delivery id ("data.id")
//	type_field        a dotted JSON path to the event type ("event.type")
//
// The header may hold several signatures separated by spaces, or by commas
// when the prefix has none, each with the prefix; up to MaxSignatures are
// tried.
func HMAC(options map[string]string, secrets ...string) (Verifier, error) {
	return newHMAC(Config{Scheme: "hmac", Secrets: secrets, Options: options})
}

var hmacOptions = []string{"header", "algorithm", "encoding", "prefix", "timestamp_header", "timestamp_field", "timestamp_unit", "template",
	"secret_encoding", "id_header", "type_header", "id_field", "type_field"}

type generic struct {
	scheme          string
	ring            keyring
	tol             time.Duration
	header, prefix  string
	decode          func(string) ([]byte, error)
	encode          func([]byte) string
	tsHeader        string
	tsField         string
	tsUnit          time.Duration
	template        []segment
	idHeader, typeH string
	idField, typeF  string
}

// segment is one piece of a template: literal text, or a placeholder
// ("body", "timestamp", "method", "url", or a header name for
// {header.<Name>}).
type segment struct {
	literal     string
	placeholder string
	header      string
	raw         string // the placeholder as written
}

func newHMAC(c Config) (Verifier, error) {
	tol, err := checkConfig(c, hmacOptions...)
	if err != nil {
		return nil, err
	}
	return newGeneric("hmac", c.Secrets, tol, c.Options)
}

// newGeneric builds the generic scheme from options o under the name
// scheme, which its errors carry: the hmac scheme itself, or a provider
// preset whose options are fixed (see presets.go).
func newGeneric(scheme string, secrets []string, tol time.Duration, o map[string]string) (*generic, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: scheme %s: %s", ErrConfig, scheme, fmt.Sprintf(format, args...))
	}
	g := &generic{
		scheme: scheme, tol: tol, header: o["header"], prefix: o["prefix"], tsHeader: o["timestamp_header"], tsField: o["timestamp_field"], tsUnit: time.Second,
		idHeader: o["id_header"], typeH: o["type_header"], idField: o["id_field"], typeF: o["type_field"],
	}
	if g.header == "" {
		return nil, bad("option header is required: the header that carries the signature")
	}
	h, ok := hashes[orDefault(o["algorithm"], "sha256")]
	if !ok {
		return nil, bad("algorithm %q is not sha1, sha256 or sha512", o["algorithm"])
	}
	enc, ok := encodings[orDefault(o["encoding"], "hex")]
	if !ok {
		return nil, bad("encoding %q is not hex, base64 or base64url", o["encoding"])
	}
	g.decode, g.encode = enc.decode, enc.encode
	switch o["timestamp_unit"] {
	case "", "s":
	case "ms":
		g.tsUnit = time.Millisecond
	default:
		return nil, bad("timestamp_unit %q is not s or ms", o["timestamp_unit"])
	}
	keys, err := decodeSecrets(secrets, orDefault(o["secret_encoding"], "raw"))
	if err != nil {
		return nil, bad("%v", err)
	}
	g.ring = newKeyring(keys, h)
	tmpl := o["template"]
	if tmpl == "" {
		tmpl = "{body}"
		if g.tsHeader != "" {
			tmpl = "{timestamp}.{body}"
		}
	}
	if g.template, err = parseTemplate(tmpl); err != nil {
		return nil, bad("template %q: %v", tmpl, err)
	}
	var hasTS, hasBody bool
	for _, s := range g.template {
		hasTS = hasTS || s.placeholder == "timestamp"
		hasBody = hasBody || s.placeholder == "body"
	}
	switch {
	case !hasBody:
		return nil, bad("template %q does not sign {body}", tmpl)
	case hasTS && g.tsHeader == "":
		return nil, bad("template %q uses {timestamp} but no timestamp_header is set", tmpl)
	case !hasTS && g.tsHeader != "":
		return nil, bad("timestamp_header %s is set but template %q does not sign {timestamp}", g.tsHeader, tmpl)
	case g.tsField != "" && g.tsHeader != "":
		return nil, bad("timestamp_field and timestamp_header are both set; a provider stamps one or the other")
	}
	return g, nil
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// decodeSecrets turns secrets written in enc into HMAC keys.
func decodeSecrets(secrets []string, enc string) ([][]byte, error) {
	if enc == "raw" {
		return rawKeys(secrets), nil
	}
	e, ok := encodings[enc]
	if !ok || enc == "base64url" {
		return nil, fmt.Errorf("secret_encoding %q is not raw, hex or base64", enc)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := e.decode(s)
		if err != nil || len(k) == 0 {
			return nil, fmt.Errorf("secret %d is not %s", i+1, enc)
		}
		keys[i] = k
	}
	return keys, nil
}

// parseTemplate splits a template into literals and placeholders.
func parseTemplate(t string) ([]segment, error) {
	var segs []segment
	for t != "" {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			segs = append(segs, segment{literal: t})
			break
		}
		if i > 0 {
			segs = append(segs, segment{literal: t[:i]})
		}
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed {")
		}
		raw, name := t[i:i+j+1], t[i+1:i+j]
		// The Caddyfile adapter rewrites its shorthands {method} and
		// {header.X} into {http.request.method} and
		// {http.request.header.X}: both spellings mean the same here.
		name = strings.TrimPrefix(name, "http.request.")
		switch {
		case name == "body" || name == "timestamp" || name == "method" || name == "url":
			segs = append(segs, segment{placeholder: name, raw: raw})
		case strings.HasPrefix(name, "header.") && len(name) > len("header."):
			segs = append(segs, segment{placeholder: "header", header: name[len("header."):], raw: raw})
		default:
			return nil, fmt.Errorf("unknown placeholder {%s} (known: {body} {timestamp} {method} {url} {header.<Name>})", name)
		}
		t = t[i+j+1:]
	}
	return segs, nil
}

// content fills the template for r.
func (g *generic) content(r *Request, ts string) ([][]byte, error) {
	parts := make([][]byte, 0, len(g.template))
	for _, s := range g.template {
		switch s.placeholder {
		case "":
			parts = append(parts, []byte(s.literal))
		case "body":
			parts = append(parts, r.Body)
		case "timestamp":
			parts = append(parts, []byte(ts))
		case "method":
			parts = append(parts, []byte(method(r)))
		case "url":
			if r.URL == nil {
				return nil, fail(g.scheme, ErrConfig, "the template signs {url} but the URL is unknown: set the source's public_url")
			}
			parts = append(parts, []byte(r.URL.String()))
		case "header":
			v := r.Header.Get(s.header)
			if v == "" {
				return nil, fail(g.scheme, ErrMissing, "no %s header, which the template signs", s.header)
			}
			parts = append(parts, []byte(v))
		}
	}
	return parts, nil
}

// parseSignatures reads up to MaxSignatures prefixed signatures separated
// by spaces, or commas unless the prefix has one ("v1,"); items without the
// prefix or that do not decode are skipped.
func parseSignatures(value, prefix string, decode func(string) ([]byte, error)) [][]byte {
	commas := !strings.Contains(prefix, ",")
	var sigs [][]byte
	for _, item := range strings.FieldsFunc(value, func(r rune) bool { return r == ' ' || r == '\t' || (commas && r == ',') }) {
		if len(sigs) == MaxSignatures {
			break
		}
		rest, ok := strings.CutPrefix(item, prefix)
		if !ok {
			continue
		}
		if b, err := decode(rest); err == nil && len(b) > 0 {
			sigs = append(sigs, b)
		}
	}
	return sigs
}

// Verify implements Verifier.
func (g *generic) Verify(r *Request) (Result, error) {
	value := r.Header.Get(g.header)
	if value == "" {
		return Result{}, fail(g.scheme, ErrMissing, "no %s header", g.header)
	}
	sigs := parseSignatures(value, g.prefix, g.decode)
	if len(sigs) == 0 {
		return Result{}, fail(g.scheme, ErrMalformed, "%s holds no %q-prefixed signature in the configured encoding", g.header, g.prefix)
	}
	var ts string
	if g.tsHeader != "" {
		ts = r.Header.Get(g.tsHeader)
		if err := checkTimestamp(g.scheme, g.tsHeader, ts, g.tsUnit, r.now(), g.tol); err != nil {
			return Result{}, err
		}
	}
	parts, err := g.content(r, ts)
	if err != nil {
		return Result{}, err
	}
	if !g.ring.match(sigs, parts...) {
		return Result{}, g.ring.mismatch(g.scheme, len(sigs))
	}
	if g.tsField != "" {
		// The body is authentic now, and its timestamp with it.
		if err := checkTimestamp(g.scheme, "body field "+g.tsField, JSONPath(r.Body, g.tsField), g.tsUnit, r.now(), g.tol); err != nil {
			return Result{}, err
		}
	}
	return g.result(r), nil
}

// stampBody adds the timestamp field to a JSON object body that lacks it,
// as the provider would have sent it; a body that has it is kept.
func (g *generic) stampBody(r *Request) error {
	if JSONPath(r.Body, g.tsField) != "" {
		return nil
	}
	b := bytes.TrimSpace(r.Body)
	if strings.Contains(g.tsField, ".") || len(b) < 2 || b[0] != '{' {
		return fail(g.scheme, ErrMalformed, "the body has no %s to sign and is not a JSON object to add it to", g.tsField)
	}
	field, _ := json.Marshal(g.tsField)
	stamp := append(append(field, ':'), unixText(r.now(), g.tsUnit)...)
	if rest := bytes.TrimSpace(b[1:]); len(rest) > 0 && rest[0] != '}' {
		stamp = append(stamp, ',')
	}
	r.Body = append(append([]byte{'{'}, stamp...), b[1:]...)
	return nil
}

// result reads the delivery id and type where the options say.
func (g *generic) result(r *Request) Result {
	var res Result
	pick := func(header, path string) string {
		if header != "" {
			if v := r.Header.Get(header); v != "" {
				return v
			}
		}
		if path != "" {
			return JSONPath(r.Body, path)
		}
		return ""
	}
	res.ID = pick(g.idHeader, g.idField)
	res.Type = pick(g.typeH, g.typeF)
	return res
}

// Sign implements Signer.
func (g *generic) Sign(r *Request) error {
	h := headers(r)
	var ts string
	if g.tsHeader != "" {
		ts = unixText(r.now(), g.tsUnit)
		h.Set(g.tsHeader, ts)
	}
	if g.tsField != "" {
		if err := g.stampBody(r); err != nil {
			return err
		}
	}
	parts, err := g.content(r, ts)
	if err != nil {
		return err
	}
	h.Set(g.header, g.prefix+g.encode(g.ring.sign(parts...)))
	return nil
}

var (
	_ Verifier = (*generic)(nil)
	_ Signer   = (*generic)(nil)
)
