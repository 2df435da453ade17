package linux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"

	"github.com/d2dmesh/d2d/device"
)

// BGPNeighbors reads the BGP sessions of FRR's default VRF through
// `vtysh -c "show bgp neighbors json"`. Without vtysh the list is empty.
func (b *Backend) BGPNeighbors(ctx context.Context) ([]device.BGPNeighbor, error) {
	out, err := b.vtysh(ctx, "show bgp neighbors json")
	if err != nil || out == nil {
		return []device.BGPNeighbor{}, err
	}
	return parseBGPNeighbors(out, b.nodeOfString)
}

// BFDSessions reads FRR's BFD peers through `vtysh -c "show bfd peers json"`.
// Without vtysh the list is empty.
func (b *Backend) BFDSessions(ctx context.Context) ([]device.BFDSession, error) {
	out, err := b.vtysh(ctx, "show bfd peers json")
	if err != nil || out == nil {
		return []device.BFDSession{}, err
	}
	return parseBFDPeers(out, b.nodeOfString)
}

// vtysh runs one show command; it returns nil output and no error when
// FRR is not installed or none of its daemons runs (vtysh then says it
// "failed to connect to any daemons"): a namespace without a routing
// daemon has no sessions, which is not an error.
func (b *Backend) vtysh(ctx context.Context, command string) ([]byte, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	path, err := exec.LookPath(b.cfg.Vtysh)
	if err != nil {
		return nil, nil
	}
	cmd := exec.CommandContext(ctx, path, "-c", command)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg := strings.TrimSpace(string(ee.Stderr) + string(out))
			if strings.Contains(msg, "failed to connect to any daemons") {
				return nil, nil
			}
			return nil, fmt.Errorf("linux: vtysh -c %q: %w: %s", command, err, msg)
		}
		return nil, fmt.Errorf("linux: vtysh -c %q: %w", command, err)
	}
	return out, nil
}

func (b *Backend) nodeOfString(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	return b.nodeOf(a)
}

// frrNeighbor holds the fields of one entry of FRR's
// `show bgp neighbors json`, an object keyed by neighbour address (or
// interface name for unnumbered peers).
type frrNeighbor struct {
	RemoteAS        uint32 `json:"remoteAs"`
	LocalAS         uint32 `json:"localAs"`
	State           string `json:"bgpState"`
	UpMsec          int64  `json:"bgpTimerUpMsec"`
	Hostname        string `json:"hostname"`
	LastResetDueTo  string `json:"lastResetDueTo"`
	LastNotifReason string `json:"lastNotificationReason"`
	LastErrorCode   string `json:"lastErrorCodeSubcode"`
}

// frrStates maps FRR's BGP state names onto RFC 4271 §8.2.2 FSM states.
var frrStates = map[string]string{
	"idle": "Idle", "connect": "Connect", "active": "Active", "opensent": "OpenSent",
	"openconfirm": "OpenConfirm", "established": "Established", "clearing": "Idle", "deleted": "Idle",
}

func parseBGPNeighbors(out []byte, nodeOf func(string) string) ([]device.BGPNeighbor, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("linux: parse vtysh bgp neighbors: %w", err)
	}
	res := []device.BGPNeighbor{}
	for addr, raw := range m {
		var n frrNeighbor
		if err := json.Unmarshal(raw, &n); err != nil || n.State == "" {
			continue // not a neighbour entry (e.g. a "vrfName" field)
		}
		state, ok := frrStates[strings.ToLower(n.State)]
		if !ok {
			state = n.State
		}
		nb := device.BGPNeighbor{Address: addr, Node: nodeOf(addr), LocalAS: n.LocalAS, PeerAS: n.RemoteAS, State: state}
		if nb.Node == "" {
			nb.Node = n.Hostname
		}
		if state == "Established" {
			nb.UptimeS = n.UpMsec / 1000
		}
		switch {
		case n.LastNotifReason != "":
			nb.LastError = n.LastNotifReason
		case n.LastResetDueTo != "":
			nb.LastError = n.LastResetDueTo
		}
		res = append(res, nb)
	}
	slices.SortFunc(res, func(x, y device.BGPNeighbor) int { return strings.Compare(x.Address, y.Address) })
	return res, nil
}

// frrBFDPeer holds the fields of one element of FRR's `show bfd peers json`.
type frrBFDPeer struct {
	Peer             string `json:"peer"`
	Interface        string `json:"interface"`
	Status           string `json:"status"`
	RemoteStatus     string `json:"remote-status"`
	Diagnostic       string `json:"diagnostic"`
	RemoteDiagnostic string `json:"remote-diagnostic"`
}

// bfdStates maps FRR's status words onto RFC 5880 §4.1 state names.
var bfdStates = map[string]string{"up": "Up", "down": "Down", "init": "Init", "shutdown": "AdminDown", "admindown": "AdminDown"}

func parseBFDPeers(out []byte, nodeOf func(string) string) ([]device.BFDSession, error) {
	var peers []frrBFDPeer
	if err := json.Unmarshal(out, &peers); err != nil {
		return nil, fmt.Errorf("linux: parse vtysh bfd peers: %w", err)
	}
	res := make([]device.BFDSession, 0, len(peers))
	for _, p := range peers {
		local := bfdStates[strings.ToLower(p.Status)]
		if local == "" {
			local = p.Status
		}
		remote := bfdStates[strings.ToLower(p.RemoteStatus)]
		if remote == "" && local == "Up" {
			// FRR does not print the remote state; a session is only Up
			// when the peer reports Init or Up (RFC 5880 §6.2), and after
			// the three-way handshake that is Up.
			remote = "Up"
		} else if remote == "" {
			remote = "Down"
		}
		s := device.BFDSession{Peer: p.Peer, Node: nodeOf(p.Peer), Interface: p.Interface, LocalState: local, RemoteState: remote}
		switch {
		case p.Diagnostic != "" && p.Diagnostic != "ok":
			s.Diagnostic = p.Diagnostic
		case p.RemoteDiagnostic != "" && p.RemoteDiagnostic != "ok":
			s.Diagnostic = "remote: " + p.RemoteDiagnostic
		}
		res = append(res, s)
	}
	return res, nil
}
