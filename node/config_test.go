package node

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `
node: PE-1
listen: "[::]:9514"
discovery:
  mode: isis
  interval: 2s
policy:
  by_role:
    controller: [ietf-mcp-report]
`)
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.populate(); err != nil {
		t.Fatal(err)
	}
	want := struct {
		Node, Mode, Listen, Socket string
		Interval, Holdtime         time.Duration
		Port                       uint16
	}{"PE-1", "isis", "[::]:9514", "/var/lib/d2d/admin.sock", 2 * time.Second, 8 * time.Second, 9514}
	got := want
	got.Node, got.Mode, got.Listen, got.Socket = c.Node, c.Discovery.Mode, c.Listen, c.AdminSocket
	got.Interval, got.Holdtime, got.Port = c.Discovery.Interval, c.Discovery.Holdtime, c.Port()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}

	for _, tt := range []struct{ name, body string }{
		{"misspelt key", "nodee: PE-1\n"},
		{"bad mode", "discovery: {mode: ospf}\n"},
		{"bad name", "node: \"PE 1\"\n"},
		{"holdtime below interval", "discovery: {interval: 10s, holdtime: 5s}\n"},
		{"bad listen", "listen: nonsense\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadConfig(write(tt.name+".yaml", tt.body))
			if err == nil {
				if c.Node == "" {
					c.Node = "x"
				}
				err = c.populate()
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error = %v, want ErrConfig", err)
			}
		})
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{"CLAB_LABEL_CLAB_NODE_NAME": "pe1", "D2D_LISTEN": ":9999"}
	var c Config
	c.ApplyEnv(func(k string) string { return env[k] })
	if c.Node != "pe1" || c.Listen != ":9999" {
		t.Errorf("from containerlab's environment: node %q listen %q", c.Node, c.Listen)
	}
	env["D2D_NODE"] = "PE-1"
	c.ApplyEnv(func(k string) string { return env[k] })
	if c.Node != "PE-1" {
		t.Errorf("D2D_NODE does not override: %q", c.Node)
	}
}

func TestDomainKey(t *testing.T) {
	if k, err := domainKey(""); k != nil || err != nil {
		t.Errorf("empty key: %x, %v", k, err)
	}
	if _, err := domainKey("00112233"); !errors.Is(err, ErrConfig) {
		t.Errorf("short key accepted: %v", err)
	}
	f := filepath.Join(t.TempDir(), "key")
	os.WriteFile(f, []byte("000102030405060708090a0b0c0d0e0f\n"), 0o600)
	if k, err := domainKey("@" + f); err != nil || len(k) != 16 {
		t.Errorf("key from file: %x, %v", k, err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
