package verify

import "testing"

// GitLab sends the secret token itself (docs.gitlab.com, "Webhooks",
// "Validate requests with a secret token"); there is nothing to compute.
func TestGitLab(t *testing.T) {
	v := Must(GitLab("s3cr3t", "old-token"))
	r := request(`{"object_kind":"push"}`, unix(0), "X-Gitlab-Token", "s3cr3t",
		"X-Gitlab-Event", "Push Hook", "X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e")
	accept(t, v, r, Result{ID: "13792a34-cac6-4fda-95a8-c58e00a3954e", Type: "Push Hook"})
	accept(t, v, request("", unix(0), "X-Gitlab-Token", "old-token", "X-Gitlab-Webhook-UUID", "u1"), Result{ID: "u1"})
	err := reject(t, v, request("", unix(0), "X-Gitlab-Token", "s3cr3"), ErrMismatch)
	noSecretIn(t, err, "s3cr3t", "old-token")
	reject(t, v, request("", unix(0), "X-Gitlab-Token", "s3cr3t "), ErrMismatch)
	reject(t, v, request("", unix(0)), ErrMissing)
}
