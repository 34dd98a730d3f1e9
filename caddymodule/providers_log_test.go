package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestProvidersSinkLogsNoSignature: Caddyfile.providers as it is (its
// access logs written to a file, its addresses moved to the test's own)
// forwards a signed GitHub delivery to its own demo sink, and neither the
// ingest site's nor the sink's access log holds the signature.
func TestProvidersSinkLogsNoSignature(t *testing.T) {
	for k, v := range providerSecrets {
		t.Setenv(k, v)
	}
	logFile := filepath.Join(t.TempDir(), "access.log")
	toFile := func(cfg string) string {
		cfg = regexp.MustCompile(`(?m)^(\t+)log \{\n`).ReplaceAllString(cfg, "${1}log {\n${1}\toutput file "+logFile+"\n")
		return regexp.MustCompile(`(?m)^(\t+)log\n`).ReplaceAllString(cfg, "${1}log {\n${1}\toutput file "+logFile+"\n${1}}\n")
	}
	addr, sinkAddr := freeAddr(t), freeAddr(t)
	loadRepoCaddyfileEdit(t, "Caddyfile.providers", toFile, map[string]string{
		"url http://127.0.0.1:8081/sink": "url http://" + sinkAddr + "/sink",
		"\n:8080 {":                      "\nhttp://" + addr + " {",
		"\n:8081 {":                      "\nhttp://" + sinkAddr + " {",
	})

	body := `{"zen":"Keep it logically awesome."}`
	mac := hmac.New(sha256.New, []byte(providerSecrets["GITHUB_WEBHOOK_SECRET"]))
	mac.Write([]byte(body))
	sig := hex.EncodeToString(mac.Sum(nil))
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/v1/github", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "ping")
	req.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	req.Header.Set("X-Hub-Signature-256", "sha256="+sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signed delivery: status %d", resp.StatusCode)
	}
	var logs string
	waitFor(t, 15*time.Second, "the sink's access log line", func() bool {
		b, _ := os.ReadFile(logFile)
		logs = string(b)
		return strings.Contains(logs, `"uri":"/sink"`)
	})
	for _, secret := range []string{sig, "X-Hub-Signature-256"} {
		if strings.Contains(logs, secret) {
			t.Errorf("an access log holds %s:\n%s", secret, logs)
		}
	}
}
