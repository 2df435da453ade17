package linux_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/internal/testenv"
)

// TestInterfacesValidateWithYanglint reads the real kernel's interfaces
// through the registry, after traffic crossed them, and validates the
// RFC 7951 document against the RFC 8343 modules with yanglint.
func TestInterfacesValidateWithYanglint(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	if _, err := l.be["PE-1"].SRv6Ping(ctx, device.SRv6PingRequest{SIDList: []string{"P-2", "PE-3"}, Count: 10}, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range labNodes {
		r := device.NewRegistry(l.be[n], device.RegistryOptions{})
		t.Cleanup(func() { r.Close() })
		res, err := r.ReadResource(ctx, device.InterfacesURI(n))
		if err != nil {
			t.Fatal(err)
		}
		doc := res.Contents[0].Text
		var parsed struct {
			Ifs struct {
				Interface []json.RawMessage `json:"interface"`
			} `json:"ietf-interfaces:interfaces"`
		}
		if err := json.Unmarshal([]byte(doc), &parsed); err != nil || len(parsed.Ifs.Interface) < 2 {
			t.Fatalf("%s: %d interfaces, %v: want lo and the lab links", n, len(parsed.Ifs.Interface), err)
		}
		if err := testenv.CheckInterfaces(t, []byte(doc)); err != nil {
			t.Errorf("%s (%s): %v", n, mcp.MethodResourcesRead, err)
		}
	}
}
