package verify

import (
	"strings"
	"testing"
)

// benchBody is a 2 KiB JSON event, the size of a typical delivery.
var benchBody = func() string {
	head := `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","type":"payment_intent.succeeded","data":{"pad":"`
	tail := `"}}`
	return head + strings.Repeat("x", 2048-len(head)-len(tail)) + tail
}()

// benchVerify signs one 2 KiB delivery for c and verifies it b.N times.
func benchVerify(b *testing.B, c schemeCase) {
	c.body = benchBody
	if c.contentType == "application/x-www-form-urlencoded" {
		c.body = "Body=" + strings.Repeat("x", 2043)
	}
	v := mustNew(b, c.config(c.newS, c.oldS))
	r := c.signed(b, c.newS, signedAt)
	if _, err := v.Verify(r); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(r.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(r); err != nil {
			b.Fatal(err)
		}
	}
}

func caseNamed(name string) schemeCase {
	for _, c := range schemeCases {
		if c.name() == name {
			return c
		}
	}
	panic("no scheme case " + name)
}

func BenchmarkVerifyGitHub(b *testing.B) { benchVerify(b, caseNamed("github")) }

func BenchmarkVerifyStripe(b *testing.B) { benchVerify(b, caseNamed("stripe")) }

func BenchmarkVerifyStandardWebhooks(b *testing.B) { benchVerify(b, caseNamed("standard-webhooks")) }

// BenchmarkVerifyAll covers every scheme case, the signature of each
// matching the older of two active secrets where that costs a second MAC.
func BenchmarkVerifyAll(b *testing.B) {
	for _, c := range schemeCases {
		b.Run(c.name(), func(b *testing.B) { benchVerify(b, c) })
	}
}

// BenchmarkVerifyRejectMaxSignatures is the worst case an attacker can
// ask for: a header full of signatures against MaxSecrets secrets.
func BenchmarkVerifyRejectMaxSignatures(b *testing.B) {
	secrets := make([]string, MaxSecrets)
	for i := range secrets {
		secrets[i] = "whsec_secret" + strings.Repeat("x", i)
	}
	v := mustNew(b, Config{Scheme: "stripe", Secrets: secrets})
	header := "t=1750000000" + strings.Repeat(",v1="+stripeSig, 1000)
	r := request(benchBody, signedAt, "Stripe-Signature", header)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(r); err == nil {
			b.Fatal("accepted")
		}
	}
}
