package node

import (
	"context"
	"strings"

	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/report"
)

// CapReports guards the report resources: reading them is what a
// controller does when it pulls (draft 003 §5.3.1 step 5).
const CapReports = "ietf-mcp-report"

// reportResources serves the on-box reports as MCP resources
// urn:ietf:params:xml:ns:yang:ietf-mcp/report/<id> (docs/ARCHITECTURE.md §3.4).
type reportResources struct {
	store *report.Store
	node  string
}

func (s *reportResources) Capability() string { return CapReports }

func (s *reportResources) List() []mcp.Resource {
	entries := s.store.List()
	out := make([]mcp.Resource, 0, len(entries))
	for _, e := range entries {
		out = append(out, mcp.Resource{
			URI:         report.URIPrefix + e.ID,
			Name:        "report-" + e.ID,
			Title:       e.Summary,
			Description: e.Intent,
			MimeType:    "application/json",
			Meta:        map[string]any{"d2d/created": e.Created, "d2d/pulled": e.Pulled},
		})
	}
	return out
}

func (s *reportResources) Read(_ context.Context, uri string) (*mcp.ReadResourceResult, bool, error) {
	id, ok := strings.CutPrefix(uri, report.URIPrefix)
	if !ok {
		return nil, false, nil
	}
	b, err := s.store.Raw(id)
	if err != nil {
		return nil, true, mcp.Errorf(mcp.CodeResourceNotFound, "report %q: %v", id, err)
	}
	return &mcp.ReadResourceResult{
		Contents: []mcp.ResourceContents{{URI: uri, MimeType: "application/json", Text: string(b)}},
		Meta:     map[string]any{mcp.SignedArtifactMetaKey: true},
	}, true, nil
}
