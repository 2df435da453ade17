package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/d2dmesh/d2d/simulate"
)

func read(t testing.TB, r *device.Registry, uri string) mcp.ResourceContents {
	t.Helper()
	res, err := r.ReadResource(context.Background(), uri)
	if err != nil {
		t.Fatalf("ReadResource(%s): %v", uri, err)
	}
	if len(res.Contents) != 1 {
		t.Fatalf("ReadResource(%s): %d contents", uri, len(res.Contents))
	}
	return res.Contents[0]
}

func TestInterfaceResource(t *testing.T) {
	n := triangle(t)
	r := newRegistry(t, n, "PE-3", device.RegistryOptions{})
	uri := device.InterfaceURI("PE-3", "eth1")
	if uri != "mcp://PE-3/ietf-interfaces:interfaces/interface=eth1" {
		t.Fatalf("InterfaceURI = %s", uri)
	}
	c1 := read(t, r, uri)
	var doc struct {
		Interfaces struct {
			Interface []map[string]any `json:"interface"`
		} `json:"ietf-interfaces:interfaces"`
	}
	if err := json.Unmarshal([]byte(c1.Text), &doc); err != nil || len(doc.Interfaces.Interface) != 1 {
		t.Fatalf("document %s: %v", c1.Text, err)
	}
	ifc := doc.Interfaces.Interface[0]
	stats := ifc["statistics"].(map[string]any)
	if ifc["name"] != "eth1" || ifc["type"] != "iana-if-type:ethernetCsmacd" || ifc["oper-status"] != "up" || ifc["speed"] != "10000000000" {
		t.Errorf("interface = %v", ifc)
	}
	if _, isString := stats["in-octets"].(string); !isString {
		t.Errorf("in-octets %v is not a JSON string (RFC 7951 §6.1)", stats["in-octets"])
	}
	if c2 := read(t, r, uri); c2.ContentID != c1.ContentID {
		t.Errorf("content-id changed without a change: %s → %s", c1.ContentID, c2.ContentID)
	}
	p2, _ := n.Device("P-2")
	if _, err := p2.Ping(context.Background(), device.PingRequest{Destination: "PE-3", Count: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if c3 := read(t, r, uri); c3.ContentID == c1.ContentID {
		t.Errorf("content-id %s did not change when the counters moved", c1.ContentID)
	}
	undo, _ := n.Inject(simulate.LinkDown{A: "P-2", B: "PE-3"})
	defer undo()
	var down struct {
		Interfaces struct {
			Interface []struct {
				Oper string `json:"oper-status"`
			} `json:"interface"`
		} `json:"ietf-interfaces:interfaces"`
	}
	_ = json.Unmarshal([]byte(read(t, r, uri).Text), &down)
	if down.Interfaces.Interface[0].Oper != "down" {
		t.Errorf("oper-status with the link down = %+v", down)
	}

	_, err := r.ReadResource(context.Background(), device.InterfaceURI("PE-3", "eth9"))
	var me *mcp.Error
	if !errors.As(err, &me) || me.Code != mcp.CodeResourceNotFound {
		t.Errorf("unknown interface: %v, want resource not found", err)
	}
	_, err = r.ReadResource(context.Background(), "mcp://PE-3/openconfig-bgp:bgp")
	if !errors.As(err, &me) || me.Code != mcp.CodeResourceNotFound {
		t.Errorf("unknown resource: %v, want resource not found", err)
	}
}

// TestInterfacesValidateWithYanglint checks the RFC 7951 document of every
// node of the simulated triangle, after traffic and with a link down,
// against ietf-interfaces with yanglint.
func TestInterfacesValidateWithYanglint(t *testing.T) {
	n := triangle(t)
	pe1, _ := n.Device("PE-1")
	if _, err := pe1.SRv6Ping(context.Background(), device.SRv6PingRequest{SIDList: []string{"P-2", "PE-3"}, Count: 20}, nil); err != nil {
		t.Fatal(err)
	}
	undo, _ := n.Inject(simulate.LinkDown{A: "PE-1", B: "PE-3"})
	defer undo()
	for _, node := range n.Nodes() {
		r := newRegistry(t, n, node, device.RegistryOptions{})
		for _, uri := range []string{device.InterfacesURI(node), device.InterfaceURI(node, "lo")} {
			if err := testenv.CheckInterfaces(t, []byte(read(t, r, uri).Text)); err != nil {
				t.Errorf("%s: %v", uri, err)
			}
		}
	}
	// The check must be able to fail: a counter as a JSON number is invalid.
	doc, _ := device.InterfacesJSON([]device.Interface{{Name: "x", Stats: device.InterfaceStats{DiscontinuityTime: time.Unix(0, 0)}}})
	if err := testenv.CheckInterfaces(t, []byte(strings.Replace(string(doc), `"in-octets":"0"`, `"in-octets":0`, 1))); err == nil {
		t.Error("yanglint accepted a counter encoded as a number")
	}
}

func TestSubscribe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := triangle(t)
		r := newRegistry(t, n, "PE-1", device.RegistryOptions{PollInterval: 500 * time.Millisecond})
		var mu sync.Mutex
		var ids []string
		cancel, err := r.Subscribe(context.Background(), device.InterfaceURI("PE-1", "eth1"), func(id string) {
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if len(ids) != 0 {
			t.Fatalf("updates without a change: %v", ids)
		}
		b := r.Backend()
		if _, err := b.Ping(context.Background(), device.PingRequest{Destination: "P-2", Count: 1}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(600 * time.Millisecond)
		synctest.Wait()
		mu.Lock()
		got := append([]string(nil), ids...)
		mu.Unlock()
		if len(got) != 1 || got[0] != read(t, r, device.InterfaceURI("PE-1", "eth1")).ContentID {
			t.Errorf("updates = %v, want the one new content-id", got)
		}
		cancel()
		cancel()
		_, _ = b.Ping(context.Background(), device.PingRequest{Destination: "P-2", Count: 1}, nil)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if len(ids) != 1 {
			t.Errorf("updates after cancel: %v", ids)
		}
		if _, err := r.Subscribe(context.Background(), "mcp://PE-1/nothing", func(string) {}); err == nil {
			t.Errorf("subscribing to an unknown resource succeeded")
		}
		// A subscription still running when its context ends stops.
		ctx, stop := context.WithCancel(context.Background())
		if _, err := r.Subscribe(ctx, device.InterfacesURI("PE-1"), func(string) {}); err != nil {
			t.Fatal(err)
		}
		stop()
		synctest.Wait()
	})
}

type reports struct{}

const reportURI = "urn:ietf:params:xml:ns:yang:ietf-mcp/report/74e8"

func (reports) List() []mcp.Resource { return []mcp.Resource{{URI: reportURI, Name: "report 74e8"}} }
func (reports) Capability() string   { return "reports" }
func (reports) Read(_ context.Context, uri string) (*mcp.ReadResourceResult, bool, error) {
	if uri != reportURI {
		return nil, false, nil
	}
	return &mcp.ReadResourceResult{Contents: []mcp.ResourceContents{{URI: uri, Text: `{"id":"74e8"}`}}}, true, nil
}

func TestResourceProvider(t *testing.T) {
	r := newRegistry(t, triangle(t), "PE-1", device.RegistryOptions{})
	r.AddResourceProvider(reports{})
	if c, ok := r.Capability(mcp.MethodResourcesRead, reportURI); !ok || c != "reports" {
		t.Errorf("Capability = %q %v", c, ok)
	}
	if got := r.ListResources(grant{"reports": true}); len(got) != 1 || got[0].URI != reportURI {
		t.Errorf("ListResources = %+v", got)
	}
	if c := read(t, r, reportURI); c.Text != `{"id":"74e8"}` || c.ContentID != device.ContentID([]byte(`{"id":"74e8"}`)) {
		t.Errorf("read = %+v", c)
	}
	if !strings.Contains(strings.Join(r.Offered(), ","), "reports") {
		t.Errorf("Offered lacks the source's capability")
	}
}
