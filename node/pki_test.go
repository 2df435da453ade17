package node_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/enroll"
	"github.com/d2dmesh/d2d/node"
	"github.com/d2dmesh/d2d/signing"
	"github.com/d2dmesh/d2d/simulate"
)

// TestAgentsRenewWithoutRestart: two agents onboarded with codes (their
// keys made by themselves) and a CA service issuing 5 s certificates run
// for three lifetimes, calling each other all along: every call
// succeeds, each agent renews in place and keeps its certificate file
// current, and the agents stay the same processes (no restart).
func TestAgentsRenewWithoutRestart(t *testing.T) {
	const validity = 5 * time.Second
	dir := t.TempDir()
	ca, err := signing.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(filepath.Join(dir, "ca")); err != nil {
		t.Fatal(err)
	}
	auth, err := enroll.OpenAuthority(filepath.Join(dir, "ca"), enroll.AuthorityConfig{Validity: validity})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := enroll.Serve(context.Background(), enroll.ServiceConfig{Authority: auth, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	netw, err := simulate.NewNetwork(simulate.Triangle(), 7)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	agents := map[string]*node.Agent{}
	members := func(self string) func() []collab.Member {
		return func() []collab.Member {
			mu.Lock()
			defer mu.Unlock()
			var out []collab.Member
			for n, a := range agents {
				if n != self {
					out = append(out, collab.Member{Name: n, Peer: collab.Peer{Name: n, Addr: a.Addr(), Thumbprint: a.Identity().Current().Thumbprint()},
						Capabilities: a.Registry().Offered()})
				}
			}
			return out
		}
	}
	for _, name := range []string{"PE-1", "P-2"} {
		code, err := auth.NewCode(name, enroll.CodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		key, err := signing.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		ob, err := enroll.Onboard(context.Background(), svc.OnboardAddr(), name, code.Code, key)
		if err != nil {
			t.Fatal(err)
		}
		state := filepath.Join(dir, name)
		if err := ob.Identity.Save(filepath.Join(state, "pki")); err != nil {
			t.Fatal(err)
		}
		if err := signing.WriteCertificateFile(filepath.Join(state, "pki", "ca.crt"), ob.CA.Raw); err != nil {
			t.Fatal(err)
		}
		b, err := netw.Device(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := node.Config{Node: name, Listen: "127.0.0.1:0", StateDir: state, AdminSocket: "-",
			CallTimeout: 3 * time.Second, Discovery: node.DiscoveryConfig{Mode: "off"},
			PKI:    node.PKIConfig{Service: "ca@" + svc.Addr().String(), RevocationInterval: time.Second},
			Policy: node.PolicyConfig{Default: []string{collab.Wildcard}}}
		a, err := node.New(context.Background(), cfg, node.Options{Backend: b, Members: members(name), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		mu.Lock()
		agents[name] = a
		mu.Unlock()
	}
	first := agents["P-2"].Identity().Cert
	deadline := time.Now().Add(3*validity + validity/2)
	calls := 0
	for time.Now().Before(deadline) {
		for from, to := range map[string]string{"PE-1": "P-2", "P-2": "PE-1"} {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := agents[from].Workflow().Call(ctx, to, "acl-list", json.RawMessage(`{}`), nil)
			cancel()
			if err != nil {
				t.Fatalf("call %d %s→%s: %v", calls, from, to, err)
			}
			calls++
		}
		time.Sleep(30 * time.Millisecond)
	}
	if !time.Now().After(first.NotAfter) {
		t.Fatal("the test did not outlive the first certificate")
	}
	for name, a := range agents {
		st := a.Renewer().Status()
		if st.Renewals < 3 || st.LastError != "" {
			t.Errorf("%s: %d renewals (want ≥ 3), last error %q", name, st.Renewals, st.LastError)
		}
		before := a.Identity().Current().Cert
		onDisk, err := signing.ReadCertificateFile(filepath.Join(dir, name, "pki", name+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		if after := a.Identity().Current().Cert; !onDisk.Equal(before) && !onDisk.Equal(after) {
			t.Errorf("%s: the certificate file is not the current certificate", name)
		}
	}
	t.Logf("%d calls over %v", calls, 3*validity+validity/2)
}
