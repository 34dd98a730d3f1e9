package verify

import "testing"

// HubSpot's vectors: hubspot-api-python tests/spec/utils/test_signature.py
// (v1, v2 and v3 over one request) and the examples of HubSpot's
// "Validating requests" page (v1 with an event batch, v2 GET).
const (
	hubspotSecret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
	hubspotBody   = "{'example_field':'example_value'}"
	hubspotURL    = "https://www.example.com/webhook_uri"
)

func hubspotV(t *testing.T, version string) Verifier {
	return mustNew(t, Config{Scheme: "hubspot", Secrets: []string{hubspotSecret}, Options: map[string]string{"version": version}})
}

func TestHubSpotKnownAnswers(t *testing.T) {
	accept(t, hubspotV(t, "v1"), request(hubspotBody, unix(0),
		"X-HubSpot-Signature", "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750", "X-HubSpot-Signature-Version", "v1"), Result{})
	accept(t, hubspotV(t, "v2"), withURL(t, request(hubspotBody, unix(0),
		"X-HubSpot-Signature", "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"), hubspotURL), Result{})
	get := withURL(t, request("", unix(0), "X-HubSpot-Signature", "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"), hubspotURL)
	get.Method = "GET"
	accept(t, hubspotV(t, "v2"), get, Result{})
	// The python SDK signs v3 at timestamp 15000000 (milliseconds).
	v3 := withURL(t, request(hubspotBody, unix(15000),
		"X-HubSpot-Signature-v3", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=", "X-HubSpot-Request-Timestamp", "15000000"), hubspotURL)
	accept(t, Must(HubSpot(hubspotSecret)), v3, Result{})

	// The docs' v1 example, a batch of one contact.creation event.
	batch := `[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]`
	accept(t, hubspotV(t, "v1"), request(batch, unix(0), "X-HubSpot-Signature", "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"),
		Result{ID: "1", Type: "contact.creation"})
}

func TestHubSpotRejects(t *testing.T) {
	v := Must(HubSpot(hubspotSecret))
	v3 := func(body, url, ts string, now int64) *Request {
		return withURL(t, request(body, unix(now), "X-HubSpot-Signature-v3", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=", "X-HubSpot-Request-Timestamp", ts), url)
	}
	reject(t, v, v3(hubspotBody+" ", hubspotURL, "15000000", 15000), ErrMismatch)
	reject(t, v, v3(hubspotBody, hubspotURL+"2", "15000000", 15000), ErrMismatch)
	reject(t, v, v3(hubspotBody, hubspotURL, "15000001", 15000), ErrMismatch)
	reject(t, v, v3(hubspotBody, hubspotURL, "15000000", 15000+301), ErrExpired)
	reject(t, v, v3(hubspotBody, hubspotURL, "15000000", 15000-301), ErrExpired)
	reject(t, v, v3(hubspotBody, hubspotURL, "15000000.0", 15000), ErrMalformed)
	reject(t, v, v3(hubspotBody, hubspotURL, "", 15000), ErrMissing)
	reject(t, v, withURL(t, request(hubspotBody, unix(15000), "X-HubSpot-Request-Timestamp", "15000000"), hubspotURL), ErrMissing)
	// The v1 signature does not satisfy a v3 source, nor the reverse.
	reject(t, v, withURL(t, request(hubspotBody, unix(15000), "X-HubSpot-Signature", "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"), hubspotURL), ErrMissing)
	reject(t, hubspotV(t, "v1"), request(hubspotBody, unix(0), "X-HubSpot-Signature", "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="), ErrMalformed)
	reject(t, hubspotV(t, "v1"), request(hubspotBody, unix(0), "X-HubSpot-Signature", "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750", "X-HubSpot-Signature-Version", "v2"), ErrMismatch)
	reject(t, hubspotV(t, "v2"), request(hubspotBody, unix(0), "X-HubSpot-Signature", "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"), ErrConfig)
	if _, err := New(Config{Scheme: "hubspot", Secrets: []string{"s"}, Options: map[string]string{"version": "v4"}}); err == nil {
		t.Fatal("version v4 accepted")
	}
}

func TestHubSpotURIDecoding(t *testing.T) {
	// HubSpot signs the URI with %3A, %2F... decoded: a signature over the
	// decoded form verifies a request to the encoded one.
	s := mustNew(t, Config{Scheme: "hubspot", Secrets: []string{hubspotSecret}}).(Signer)
	signed := withURL(t, request(hubspotBody, unix(15000)), "https://www.example.com/webhook_uri?next=a:b/c@d")
	if err := s.Sign(signed); err != nil {
		t.Fatal(err)
	}
	r := withURL(t, request(hubspotBody, unix(15000), "X-HubSpot-Signature-v3", signed.Header.Get("X-HubSpot-Signature-v3"),
		"X-HubSpot-Request-Timestamp", "15000000"), "https://www.example.com/webhook_uri?next=a%3Ab%2Fc%40d")
	accept(t, Must(HubSpot(hubspotSecret)), r, Result{})
}

func TestHubSpotBatch(t *testing.T) {
	for _, c := range []struct {
		body string
		want Result
	}{
		{`[{"eventId":7,"subscriptionType":"deal.creation"},{"eventId":8,"subscriptionType":"deal.creation"}]`, Result{Type: "deal.creation"}},
		{`[{"eventId":7,"subscriptionType":"deal.creation"},{"eventId":8,"subscriptionType":"contact.deletion"}]`, Result{}},
		{`[]`, Result{}},
		{`{"eventId":7}`, Result{}},
	} {
		if got := hubspotResult([]byte(c.body)); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.body, got, c.want)
		}
	}
}
