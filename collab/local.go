package collab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/internal/mcp"
	"github.com/d2dmesh/d2d/signing"
)

// LocalCall is Local with the options of a remote call: progress and, for
// a mutating tool, the signed consent object.
func (e *Endpoint) LocalCall(ctx context.Context, method, target string, args json.RawMessage, opt CallOptions) (signing.Evidence, error) {
	prov := e.cfg.Provider
	if prov == nil {
		return signing.Evidence{}, errors.New("collab: local call on an endpoint without a Provider")
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	session := "local:" + hex.EncodeToString(b[:])
	var result any
	switch method {
	case mcp.MethodToolsCall:
		args = orEmpty(args)
		r, err := prov.CallTool(ctx, device.ToolRequest{Name: target, Arguments: args, Progress: opt.Progress, Consent: opt.Consent, Caller: e.cfg.Identity.Name})
		if err != nil {
			return signing.Evidence{}, fmt.Errorf("collab: local %s %s: %w", method, target, err)
		}
		result = r
	case mcp.MethodResourcesRead:
		args, _ = json.Marshal(mcp.ReadResourceParams{URI: target})
		r, err := prov.ReadResource(ctx, target)
		if err != nil {
			return signing.Evidence{}, fmt.Errorf("collab: local %s %s: %w", method, target, err)
		}
		result = r
	default:
		return signing.Evidence{}, fmt.Errorf("collab: local %q: %w", method, errUnsupportedMethod)
	}
	_, parts, err := e.signedBody(result, method, target, args, session, signing.Thumbprint{})
	if err != nil {
		return signing.Evidence{}, err
	}
	return signing.Evidence{Node: e.cfg.Identity.Name, Method: method, Target: target, Arguments: args,
		Result: parts.result, Envelope: parts.env, Via: "local"}, nil
}
