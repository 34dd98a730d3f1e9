package verify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fail makes the error a verifier returns: "<scheme>: <sentinel>: <detail>".
// The detail names the check and the value that failed, never a secret or
// an expected signature.
func fail(scheme string, kind error, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", scheme, kind, fmt.Sprintf(format, args...))
}

// quote shows an untrusted value in an error, cut short so a huge header
// cannot flood the log.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// checkConfig validates what every scheme shares: the number of secrets,
// none empty, no option outside known, a sane tolerance. It returns the
// tolerance to use.
func checkConfig(c Config, known ...string) (time.Duration, error) {
	if len(c.Secrets) == 0 {
		return 0, fmt.Errorf("%w: scheme %s needs at least one secret", ErrConfig, c.Scheme)
	}
	if len(c.Secrets) > MaxSecrets {
		return 0, fmt.Errorf("%w: scheme %s: %d secrets, at most %d may be active", ErrConfig, c.Scheme, len(c.Secrets), MaxSecrets)
	}
	for i, s := range c.Secrets {
		if s == "" {
			// An unset environment variable must not become an empty
			// HMAC key that anyone can sign with.
			return 0, fmt.Errorf("%w: scheme %s: secret %d is empty", ErrConfig, c.Scheme, i+1)
		}
	}
	if err := checkOptions(c, known...); err != nil {
		return 0, err
	}
	switch {
	case c.Tolerance < 0:
		return 0, fmt.Errorf("%w: scheme %s: tolerance %s is negative", ErrConfig, c.Scheme, c.Tolerance)
	case c.Tolerance == 0:
		return DefaultTolerance, nil
	}
	return c.Tolerance, nil
}

// checkOptions rejects any option a scheme does not know, so a typo is an
// error at load time rather than a silently ignored setting.
func checkOptions(c Config, known ...string) error {
	var unknown []string
	for k := range c.Options {
		found := false
		for _, n := range known {
			found = found || k == n
		}
		if !found {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	if len(known) == 0 {
		return fmt.Errorf("%w: scheme %s takes no options, got %s", ErrConfig, c.Scheme, strings.Join(unknown, ", "))
	}
	return fmt.Errorf("%w: scheme %s: unknown option %s (known: %s)", ErrConfig, c.Scheme, strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// rawRing checks c and makes a keyring of its secrets used as they are, the
// common case (Stripe, GitHub, Slack...). It returns the tolerance too.
func rawRing(c Config, h func() hash.Hash, known ...string) (keyring, time.Duration, error) {
	tol, err := checkConfig(c, known...)
	if err != nil {
		return keyring{}, 0, err
	}
	return newKeyring(rawKeys(c.Secrets), h), tol, nil
}

// rawKeys turns secrets used as they are (Stripe, GitHub, Slack...) into
// HMAC keys.
func rawKeys(secrets []string) [][]byte {
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		keys[i] = []byte(s)
	}
	return keys
}

// keyring holds a scheme's active HMAC keys and its hash.
type keyring struct {
	keys [][]byte
	hash func() hash.Hash
	// pools recycle one keyed HMAC per key (pools[i] for keys[i]), so
	// that checking a signature allocates nothing. match checks through
	// them only: a keyring that checks signatures is made by newKeyring
	// (a literal one only signs or MACs, as the handshakes do).
	pools []*sync.Pool
}

// newKeyring makes a keyring of keys under hash, with its HMAC pools.
func newKeyring(keys [][]byte, h func() hash.Hash) keyring {
	k := keyring{keys: keys, hash: h, pools: make([]*sync.Pool, len(keys))}
	for i, key := range keys {
		k.pools[i] = &sync.Pool{New: func() any { return &keyedMAC{h: hmac.New(h, key)} }}
	}
	return k
}

// keyedMAC is an HMAC under one key, recycled by a keyring's pool, with
// room for its sum (SHA-512's is the largest).
type keyedMAC struct {
	h   hash.Hash
	sum [sha512.Size]byte
}

// mac is the HMAC of the concatenated parts under key.
func (k keyring) mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(k.hash, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// match reports whether any of sigs is the MAC of parts under any key. It
// computes one MAC per key, whatever the number of signatures, and
// compares in constant time.
func (k keyring) match(sigs [][]byte, parts ...[]byte) bool {
	for _, pool := range k.pools {
		if k.matchPooled(pool, sigs, parts) {
			return true
		}
	}
	return false
}

// matchPooled is match for one key, with an HMAC from its pool: Reset
// brings a keyed HMAC back to its keyed state.
func (k keyring) matchPooled(pool *sync.Pool, sigs, parts [][]byte) bool {
	m := pool.Get().(*keyedMAC)
	defer pool.Put(m)
	m.h.Reset()
	for _, p := range parts {
		m.h.Write(p)
	}
	sum := m.h.Sum(m.sum[:0])
	for _, s := range sigs {
		if hmac.Equal(sum, s) {
			return true
		}
	}
	return false
}

// sign is the MAC of parts under the newest key.
func (k keyring) sign(parts ...[]byte) []byte { return k.mac(k.keys[0], parts...) }

// mismatch is the error when no signature matched.
func (k keyring) mismatch(scheme string, sigs int) error {
	return fail(scheme, ErrMismatch, "%s match none of %d secret(s)", plural(sigs, "signature"), len(k.keys))
}

// plural writes "1 signature" or "3 signatures".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// hashes are the algorithms the generic scheme offers.
var hashes = map[string]func() hash.Hash{
	"sha1":   sha1.New,
	"sha256": sha256.New,
	"sha512": sha512.New,
}

// encodings decode and encode signatures. Base64 is accepted with or
// without padding, as senders differ.
var encodings = map[string]struct {
	decode func(string) ([]byte, error)
	encode func([]byte) string
}{
	"hex":       {hex.DecodeString, hex.EncodeToString},
	"base64":    {decodeB64(base64.StdEncoding), base64.StdEncoding.EncodeToString},
	"base64url": {decodeB64(base64.URLEncoding), base64.URLEncoding.EncodeToString},
}

// decodeB64 decodes padded or unpadded base64 in enc's alphabet.
func decodeB64(enc *base64.Encoding) func(string) ([]byte, error) {
	return func(s string) ([]byte, error) {
		if strings.HasSuffix(s, "=") || len(s)%4 == 0 {
			return enc.DecodeString(s)
		}
		return enc.WithPadding(base64.NoPadding).DecodeString(s)
	}
}

// eachItem calls fn for each sep-separated item of a header value, trimmed
// of spaces, skipping empty items. It stops early when fn returns false.
func eachItem(s string, sep byte, fn func(item string) bool) {
	for s != "" {
		var item string
		if i := strings.IndexByte(s, sep); i >= 0 {
			item, s = s[:i], s[i+1:]
		} else {
			item, s = s, ""
		}
		if item = strings.TrimSpace(item); item != "" && !fn(item) {
			return
		}
	}
}

// keyValues parses "k=v<sep>k=v" headers (Stripe's, Paddle's): it returns
// the value of tsKey and up to MaxSignatures decoded values of sigKey.
// Values of sigKey that do not decode are skipped, as stripe-go does, so
// a future signature format next to ours does not break verification.
func keyValues(scheme, name, value string, sep byte, tsKey, sigKey string, decode func(string) ([]byte, error)) (ts string, sigs [][]byte, err error) {
	if value == "" {
		return "", nil, fail(scheme, ErrMissing, "no %s header", name)
	}
	eachItem(value, sep, func(item string) bool {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			err = fail(scheme, ErrMalformed, "%s item %s has no '='", name, quote(item))
			return false
		}
		switch strings.TrimSpace(k) {
		case tsKey:
			if ts != "" {
				err = fail(scheme, ErrMalformed, "%s has two %s= timestamps", name, tsKey)
				return false
			}
			ts = strings.TrimSpace(v)
		case sigKey:
			if len(sigs) < MaxSignatures {
				if b, derr := decode(strings.TrimSpace(v)); derr == nil && len(b) > 0 {
					sigs = append(sigs, b)
				}
			}
		}
		return true
	})
	if err != nil {
		return "", nil, err
	}
	if ts == "" {
		return "", nil, fail(scheme, ErrMalformed, "%s has no %s= timestamp", name, tsKey)
	}
	return ts, sigs, nil
}

// decodeOne decodes a header that carries exactly one signature.
func decodeOne(scheme, name, value, prefix string, decode func(string) ([]byte, error)) ([]byte, error) {
	if value == "" {
		return nil, fail(scheme, ErrMissing, "no %s header", name)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(value), prefix)
	if !ok {
		return nil, fail(scheme, ErrMalformed, "%s does not start with %q", name, prefix)
	}
	b, err := decode(rest)
	if err != nil || len(b) == 0 {
		return nil, fail(scheme, ErrMalformed, "%s is not a valid encoded signature", name)
	}
	return b, nil
}

// decodeOneHex is decodeOne for a hex signature: it decodes into buf
// when the signature fits, so a check allocates nothing, and otherwise
// answers exactly as decodeOne with hex.DecodeString does.
func decodeOneHex(scheme, name, value, prefix string, buf []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(value), prefix)
	if value == "" || !ok || len(rest) > 2*len(buf) {
		return decodeOne(scheme, name, value, prefix, hex.DecodeString)
	}
	n, ok := unhex(buf, rest)
	if !ok || n == 0 {
		return nil, fail(scheme, ErrMalformed, "%s is not a valid encoded signature", name)
	}
	return buf[:n], nil
}

// unhex decodes the hex string s into dst, which has room for it, and
// reports how many bytes it wrote; false for an odd length or a byte
// that is not a hex digit, as hex.DecodeString fails.
func unhex(dst []byte, s string) (int, bool) {
	if len(s)%2 != 0 {
		return 0, false
	}
	for i := 0; i < len(s); i += 2 {
		hi, ok1 := fromHexChar(s[i])
		lo, ok2 := fromHexChar(s[i+1])
		if !ok1 || !ok2 {
			return 0, false
		}
		dst[i/2] = hi<<4 | lo
	}
	return len(s) / 2, true
}

// fromHexChar is the value of one hex digit, either case.
func fromHexChar(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// headers returns r.Header, made when nil, for a Signer to fill.
func headers(r *Request) http.Header {
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	return r.Header
}

// setDefault sets a header only when the caller has not, so a Signer keeps
// a delivery id chosen by its caller.
func setDefault(h http.Header, name, value string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	h.Set(name, value)
	return value
}

// randomHex returns n random bytes in hex, for delivery ids and tokens.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b)
}

// uuid4 returns a random RFC 4122 version 4 UUID, the shape of GitHub's
// and GitLab's delivery ids.
func uuid4() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// unixText formats a signing time in seconds or milliseconds.
func unixText(t time.Time, unit time.Duration) string {
	if unit == time.Millisecond {
		return strconv.FormatInt(t.UnixMilli(), 10)
	}
	return strconv.FormatInt(t.Unix(), 10)
}
