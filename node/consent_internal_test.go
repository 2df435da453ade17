package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/signing"
)

func TestVerifyConsent(t *testing.T) {
	ca, err := signing.NewCA("test-ca", 0)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := signing.NewCA("other-ca", 0)
	signer, _ := ca.Issue("PE-1", signing.IssueOptions{})
	intruder, _ := foreign.Issue("PE-1", signing.IssueOptions{})
	now := time.Now()
	a := &Agent{cfg: Config{Node: "PE-1"}, opt: Options{Now: func() time.Time { return now }}, trust: signing.NewTrust(ca.Cert)}
	args := json.RawMessage(`{"acl":"2001","rule":"10","enabled":false,"rollbackSeconds":120}`)
	consent := func(id *signing.Identity, mutate func(*device.Consent)) device.Consent {
		c := device.Consent{Tool: "acl-rule-set", Arguments: args, Node: "PE-1", RollbackSeconds: 120,
			Operator: "alice", Role: "operator", Timestamp: now, KeyID: id.Thumbprint().String(), Cert: id.CertDER}
		if mutate != nil {
			mutate(&c)
		}
		p, err := c.Payload()
		if err != nil {
			t.Fatal(err)
		}
		c.Signature = id.Sign(p)
		return c
	}
	// Same arguments, other formatting: still the same consent.
	reordered := json.RawMessage(`{ "rule":"10", "acl":"2001", "rollbackSeconds":120, "enabled":false }`)
	if err := a.verifyConsent(consent(signer, nil), "acl-rule-set", reordered); err != nil {
		t.Fatalf("valid consent refused: %v", err)
	}
	tests := []struct {
		name string
		c    device.Consent
		tool string
		args json.RawMessage
		want string
	}{
		{"other tool", consent(signer, nil), "clear-counters", args, "not \"clear-counters\""},
		{"other node", consent(signer, func(c *device.Consent) { c.Node = "P-2" }), "acl-rule-set", args, "for node \"P-2\""},
		{"other arguments", consent(signer, nil), "acl-rule-set", json.RawMessage(`{"acl":"2001","rule":"20","enabled":false,"rollbackSeconds":120}`), "covers arguments"},
		{"stale", consent(signer, func(c *device.Consent) { c.Timestamp = now.Add(-time.Hour) }), "acl-rule-set", args, "stale"},
		{"no operator", consent(signer, func(c *device.Consent) { c.Operator = "" }), "acl-rule-set", args, "no operator"},
		{"foreign CA", consent(intruder, nil), "acl-rule-set", args, "consent signer"},
		{"key id of another cert", consent(signer, func(c *device.Consent) { c.KeyID = intruder.Thumbprint().String() }), "acl-rule-set", args, "key id"},
		{"tampered after signing", func() device.Consent {
			c := consent(signer, nil)
			c.Role = "admin"
			return c
		}(), "acl-rule-set", args, "signature does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.verifyConsent(tt.c, tt.tool, tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestAdminSocketMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	s, err := listenAdmin(path, nil, nil, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("admin socket mode %v, want 0600", perm)
	}
	if _, err := listenAdmin(path, nil, nil, discardLogger()); err == nil {
		t.Error("a second agent took over a live admin socket")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Error("second Close returned nil, want net.ErrClosed")
	}
}
