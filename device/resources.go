package device

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/d2dmesh/d2d/internal/mcp"
)

// ResourceSource adds resources to a Registry, e.g. the stored reports.
type ResourceSource interface {
	// List returns the resources the source serves.
	List() []mcp.Resource
	// Read returns the resource at uri; ok is false when uri is not the
	// source's.
	Read(ctx context.Context, uri string) (res *mcp.ReadResourceResult, ok bool, err error)
	// Capability names the capability that guards all of the source's
	// resources.
	Capability() string
}

// AddResourceProvider adds a source of further resources. Sources are
// asked in the order they were added, after the interface resources.
func (r *Registry) AddResourceProvider(p ResourceSource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources = append(r.sources, p)
}

func (r *Registry) sourceList() []ResourceSource {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ResourceSource(nil), r.sources...)
}

// MIME type of the RFC 7951 documents (RFC 8040 §11.3.2).
const yangJSON = "application/yang-data+json"

const interfacesPath = "ietf-interfaces:interfaces"

// InterfacesURI returns the URI of all interfaces of node.
func InterfacesURI(node string) string { return "mcp://" + node + "/" + interfacesPath }

// InterfaceURI returns the URI of one interface of node; the name is
// percent-encoded as a RESTCONF list key (RFC 8040 §3.5.3).
func InterfaceURI(node, name string) string {
	return InterfacesURI(node) + "/interface=" + url.PathEscape(name)
}

// parseInterfaceURI recognises this node's interface URIs; name is "" for
// the whole list.
func (r *Registry) parseInterfaceURI(uri string) (name string, ok bool) {
	base := InterfacesURI(r.Node())
	if uri == base {
		return "", true
	}
	rest, found := strings.CutPrefix(uri, base+"/interface=")
	if !found || rest == "" {
		return "", false
	}
	n, err := url.PathUnescape(rest)
	if err != nil || n == "" || strings.Contains(n, "/") {
		return "", false
	}
	return n, true
}

// ListResources lists the resources g allows: the interface list, one per
// interface, and those of added sources.
func (r *Registry) ListResources(g Grant) []mcp.Resource {
	var out []mcp.Resource
	if g != nil && g.Allows(CapInterfaces) {
		node := r.Node()
		out = append(out, mcp.Resource{
			URI: InterfacesURI(node), Name: interfacesPath, Title: "Interfaces of " + node,
			Description: "ietf-interfaces (RFC 8343) configuration, state and statistics, RFC 7951 JSON",
			MimeType:    yangJSON, Meta: map[string]any{MetaCapability: CapInterfaces},
		})
		ctx, cancel := context.WithTimeout(context.Background(), r.opt.ListTimeout)
		ifs, err := r.b.Interfaces(ctx)
		cancel()
		if err != nil {
			r.opt.Logger.Warn("listing interfaces", "err", err)
		}
		for _, i := range ifs {
			out = append(out, mcp.Resource{
				URI: InterfaceURI(node, i.Name), Name: "interface=" + i.Name, Title: "Interface " + i.Name + " of " + node,
				MimeType: yangJSON, Meta: map[string]any{MetaCapability: CapInterfaces},
			})
		}
	}
	for _, s := range r.sourceList() {
		if g == nil || !g.Allows(s.Capability()) {
			continue
		}
		out = append(out, s.List()...)
	}
	return out
}

// ReadResource reads one resource. An unknown URI is an *mcp.Error with
// CodeResourceNotFound.
func (r *Registry) ReadResource(ctx context.Context, uri string) (*mcp.ReadResourceResult, error) {
	if name, ok := r.parseInterfaceURI(uri); ok {
		ifs, err := r.b.Interfaces(ctx)
		if err != nil {
			return nil, mcp.Errorf(mcp.CodeInternalError, "resource %s: %v", uri, err)
		}
		if name != "" {
			var one []Interface
			for _, i := range ifs {
				if i.Name == name {
					one = append(one, i)
				}
			}
			if len(one) == 0 {
				return nil, mcp.Errorf(mcp.CodeResourceNotFound, "resource %s: interface %q not found on %s", uri, name, r.Node())
			}
			ifs = one
		}
		doc, err := InterfacesJSON(ifs)
		if err != nil {
			return nil, mcp.Errorf(mcp.CodeInternalError, "resource %s: %v", uri, err)
		}
		return &mcp.ReadResourceResult{Contents: []mcp.ResourceContents{{
			URI: uri, MimeType: yangJSON, Text: string(doc), ContentID: ContentID(doc),
		}}}, nil
	}
	for _, s := range r.sourceList() {
		res, ok, err := s.Read(ctx, uri)
		if !ok {
			continue
		}
		if err != nil {
			return nil, mcp.Errorf(mcp.CodeInternalError, "resource %s: %v", uri, err)
		}
		for i := range res.Contents {
			c := &res.Contents[i]
			if c.ContentID == "" {
				c.ContentID = ContentID([]byte(c.Text + c.Blob))
			}
		}
		return res, nil
	}
	return nil, mcp.Errorf(mcp.CodeResourceNotFound, "resource %s not found", uri)
}

// ContentID returns the content-id (E-tag, draft §3.1) of a document: a
// truncated SHA-256, so it changes exactly when the bytes change.
func ContentID(doc []byte) string {
	h := sha256.Sum256(doc)
	return "sha256-" + hex.EncodeToString(h[:12])
}

// yang* mirror the ietf-interfaces (RFC 8343) data tree, RFC 7951 encoded.
type yangInterfaces struct {
	Interfaces struct {
		Interface []yangInterface `json:"interface"`
	} `json:"ietf-interfaces:interfaces"`
}

type yangInterface struct {
	Name        string     `json:"name"`
	Type        string     `json:"type"`
	Enabled     bool       `json:"enabled"`
	OperStatus  string     `json:"oper-status"`
	PhysAddress string     `json:"phys-address,omitempty"`
	Speed       string     `json:"speed,omitempty"`
	Statistics  yangCounts `json:"statistics"`
}

// yangCounts are the statistics: counter64 leaves are JSON strings (RFC
// 7951 §6.1), counter32 leaves (discards, errors) JSON numbers that wrap
// at 2^32 like the counters they model.
type yangCounts struct {
	DiscontinuityTime string `json:"discontinuity-time"`
	InOctets          string `json:"in-octets"`
	InUnicastPkts     string `json:"in-unicast-pkts"`
	InMulticastPkts   string `json:"in-multicast-pkts"`
	InDiscards        uint32 `json:"in-discards"`
	InErrors          uint32 `json:"in-errors"`
	OutOctets         string `json:"out-octets"`
	OutUnicastPkts    string `json:"out-unicast-pkts"`
	OutMulticastPkts  string `json:"out-multicast-pkts"`
	OutDiscards       uint32 `json:"out-discards"`
	OutErrors         uint32 `json:"out-errors"`
}

// InterfacesJSON encodes interfaces as an RFC 7951 ietf-interfaces
// document. Interface types without a module prefix get iana-if-type's;
// an empty type is ethernetCsmacd. A zero discontinuity time is the Unix
// epoch, the RFC's "since the counters were last reset" with no better
// knowledge.
func InterfacesJSON(ifs []Interface) ([]byte, error) {
	var doc yangInterfaces
	doc.Interfaces.Interface = make([]yangInterface, 0, len(ifs))
	for _, i := range ifs {
		typ := i.Type
		switch {
		case typ == "":
			typ = "iana-if-type:ethernetCsmacd"
		case !strings.Contains(typ, ":"):
			typ = "iana-if-type:" + typ
		}
		oper := "down"
		if i.OperUp {
			oper = "up"
		}
		y := yangInterface{Name: i.Name, Type: typ, Enabled: i.Enabled, OperStatus: oper, PhysAddress: i.PhysAddress}
		if i.SpeedBPS > 0 {
			y.Speed = strconv.FormatUint(i.SpeedBPS, 10)
		}
		s := i.Stats
		dt := s.DiscontinuityTime
		if dt.IsZero() {
			dt = time.Unix(0, 0)
		}
		u := func(v uint64) string { return strconv.FormatUint(v, 10) }
		y.Statistics = yangCounts{
			DiscontinuityTime: dt.UTC().Format(time.RFC3339Nano),
			InOctets:          u(s.InOctets), InUnicastPkts: u(s.InUnicastPkts), InMulticastPkts: u(s.InMulticastPkts),
			InDiscards: uint32(s.InDiscards), InErrors: uint32(s.InErrors),
			OutOctets: u(s.OutOctets), OutUnicastPkts: u(s.OutUnicastPkts), OutMulticastPkts: u(s.OutMulticastPkts),
			OutDiscards: uint32(s.OutDiscards), OutErrors: uint32(s.OutErrors),
		}
		doc.Interfaces.Interface = append(doc.Interfaces.Interface, y)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("device: encoding interfaces: %w", err)
	}
	return b, nil
}

// subscription is one Subscribe poller.
type subscription struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

func (s *subscription) stop() {
	s.once.Do(s.cancel)
	<-s.done
}

// Subscribe reads uri now and then every PollInterval, and calls updated
// with the new content-id whenever it differs from the last one seen. It
// stops when cancel is called, ctx ends or the registry closes; cancel
// waits for the poller to finish and may be called more than once.
// updated is called from the poller's goroutine, one call at a time.
func (r *Registry) Subscribe(ctx context.Context, uri string, updated func(contentID string)) (func(), error) {
	first, err := r.ReadResource(ctx, uri)
	if err != nil {
		return nil, err
	}
	last := ""
	if len(first.Contents) > 0 {
		last = first.Contents[0].ContentID
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &subscription{cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel()
		return nil, mcp.Errorf(mcp.CodeInternalError, "%v", ErrClosed)
	}
	r.subs[s] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	// The caller's ctx ends the subscription too, without leaking a
	// goroutine that waits on it.
	stopWatch := context.AfterFunc(ctx, cancel)
	go func() {
		defer r.wg.Done()
		defer close(s.done)
		defer stopWatch()
		t := time.NewTicker(r.opt.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			res, err := r.ReadResource(pctx, uri)
			if err != nil {
				if pctx.Err() == nil {
					r.opt.Logger.Debug("subscription poll", "uri", uri, "err", err)
				}
				continue
			}
			if len(res.Contents) == 0 || res.Contents[0].ContentID == last {
				continue
			}
			last = res.Contents[0].ContentID
			updated(last)
		}
	}()
	return func() {
		s.stop()
		r.mu.Lock()
		delete(r.subs, s)
		r.mu.Unlock()
	}, nil
}
