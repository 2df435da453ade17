package device

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
)

// ToolDigest is the hex SHA-256 of the RFC 8785 canonical JSON of one tool
// definition (name, description, schemas, annotations, _meta): what a
// caller pins to detect a swapped or shadowed tool
// (draft-yang-nmrg-mcp-nm-02 §4).
func ToolDigest(t mcp.Tool) (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("device: tool %s: %w", t.Name, err)
	}
	h, err := signing.HashArgs(b)
	if err != nil {
		return "", fmt.Errorf("device: tool %s: %w", t.Name, err)
	}
	return hex.EncodeToString(h[:]), nil
}

// InventoryDigest is the digest of a whole tool list, independent of its
// order: the SHA-256 of the sorted "name=digest" lines. Two devices with
// the same tool set and grant have the same inventory digest.
func InventoryDigest(tools []mcp.Tool) (string, error) {
	lines := make([]string, 0, len(tools))
	for _, t := range tools {
		d, err := ToolDigest(t)
		if err != nil {
			return "", err
		}
		lines = append(lines, t.Name+"="+d)
	}
	slices.Sort(lines)
	b, _ := json.Marshal(strings.Join(lines, "\n"))
	h, err := signing.HashArgs(b)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h[:]), nil
}
