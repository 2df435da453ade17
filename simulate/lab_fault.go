package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/d2dmesh/d2d/device/linux"
)

// Lab fault kinds, as `d2d lab fault` names them.
const (
	// LabACLDrop installs a probabilistic nftables drop as rule Rule of
	// egress ACL ACL on Node's interface towards Peer (device/linux's
	// InstallACLDrop, the ACL format the agent reads).
	LabACLDrop = "acl-drop"
	// LabLinkDown sets Node's interface towards Peer down; the veth peer
	// loses carrier, as with a pulled cable.
	LabLinkDown = "link-down"
	// LabAgentStop kills Node's agent without letting it leave the
	// domain, as a crash would; clearing starts it again.
	LabAgentStop = "agent-stop"
)

// LabFault is one fault injected into a running lab.
type LabFault struct {
	Kind string `json:"kind"`
	Node string `json:"node"`
	Peer string `json:"peer,omitempty"`
	// Interface is Node's interface towards Peer.
	Interface string `json:"interface,omitempty"`
	ACL       string `json:"acl,omitempty"`
	Rule      string `json:"rule,omitempty"`
	// Rate is the drop probability of an ACL drop (0 < Rate ≤ 1).
	Rate float64 `json:"rate,omitempty"`
	// HadTable and HadACL record what existed before an ACL drop, so
	// clearing restores no less and no more.
	HadTable bool `json:"hadTable,omitempty"`
	HadACL   bool `json:"hadACL,omitempty"`
	// Restore holds, for a link down, the ip(8) arguments that put back
	// what the kernel removes with the link: the interface's global
	// addresses and the configured routes through it.
	Restore [][]string `json:"restore,omitempty"`
}

func (f LabFault) String() string {
	switch f.Kind {
	case LabACLDrop:
		return fmt.Sprintf("%s %s %s %s %g%% (rule %s on %s)", f.Kind, f.Node, f.ACL, f.Peer, f.Rate*100, f.Rule, f.Interface)
	case LabLinkDown:
		return fmt.Sprintf("%s %s %s (%s)", f.Kind, f.Node, f.Peer, f.Interface)
	}
	return f.Kind + " " + f.Node
}

// ParseLabFault reads the command-line form of a fault:
//
//	acl-drop NODE ACL PEER RATE [RULE]   RATE as "3%" or "0.03"; RULE default 10
//	link-down NODE PEER
//	agent-stop NODE
func ParseLabFault(args []string) (LabFault, error) {
	bad := func(msg string) (LabFault, error) {
		return LabFault{}, fmt.Errorf("%w: fault %q: %s", ErrLab, strings.Join(args, " "), msg)
	}
	if len(args) == 0 {
		return bad("no kind (acl-drop, link-down, agent-stop)")
	}
	f := LabFault{Kind: args[0]}
	switch f.Kind {
	case LabACLDrop:
		if len(args) != 5 && len(args) != 6 {
			return bad("want acl-drop NODE ACL PEER RATE [RULE]")
		}
		f.Node, f.ACL, f.Peer, f.Rule = args[1], args[2], args[3], "10"
		if len(args) == 6 {
			f.Rule = args[5]
		}
		r := strings.TrimSpace(args[4])
		pct := strings.HasSuffix(r, "%")
		v, err := strconv.ParseFloat(strings.TrimSuffix(r, "%"), 64)
		if err != nil {
			return bad("rate: " + err.Error())
		}
		if pct {
			v /= 100
		}
		if !(v > 0 && v <= 1) {
			return bad("rate must be in (0, 100%]")
		}
		f.Rate = v
	case LabLinkDown:
		if len(args) != 3 {
			return bad("want link-down NODE PEER")
		}
		f.Node, f.Peer = args[1], args[2]
	case LabAgentStop:
		if len(args) != 2 {
			return bad("want agent-stop NODE")
		}
		f.Node = args[1]
	default:
		return bad("unknown kind (acl-drop, link-down, agent-stop)")
	}
	return f, nil
}

// Inject applies a fault and records it, so ClearFaults can undo it.
func (l *Lab) Inject(ctx context.Context, f LabFault) error {
	n, err := l.Node(f.Node)
	if err != nil {
		return err
	}
	if _, ok := l.state.Nodes[n.Name]; !ok {
		return fmt.Errorf("%w: %s is not a node", ErrLab, f.Node)
	}
	f.Node = n.Name
	if f.Peer != "" {
		p, err := l.Node(f.Peer)
		if err != nil {
			return err
		}
		f.Peer = p.Name
		link, ok := l.topo.LinkBetween(f.Node, f.Peer)
		if !ok {
			return fmt.Errorf("%w: %s and %s share no link", ErrLab, f.Node, f.Peer)
		}
		f.Interface = link.Endpoints[0].Interface
	}
	switch f.Kind {
	case LabACLDrop:
		b, err := linux.New(linux.Config{Node: n.D2D, NetNS: n.NetNS})
		if err != nil {
			return err
		}
		defer b.Close()
		acls, err := b.ACLs(ctx)
		if err != nil {
			return err
		}
		f.HadTable = run(ctx, "ip", "netns", "exec", n.NetNS, "nft", "list", "table", "inet", "d2d") == nil
		for _, a := range acls {
			if a.Name == f.ACL {
				f.HadACL = true
			}
		}
		if err := b.InstallACLDrop(ctx, f.ACL, f.Rule, f.Interface, f.Rate); err != nil {
			return err
		}
	case LabLinkDown:
		if f.Restore, err = linkConfig(ctx, n.NetNS, f.Interface); err != nil {
			return err
		}
		if err := run(ctx, "ip", "-n", n.NetNS, "link", "set", f.Interface, "down"); err != nil {
			return err
		}
	case LabAgentStop:
		// SIGKILL: a crash, not a goodbye; the others find out by
		// themselves, as they would in a real network.
		if err := l.stopAgent(n, syscall.SIGKILL, time.Second); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: unknown fault kind %q", ErrLab, f.Kind)
	}
	l.state.Faults = append(l.state.Faults, f)
	return l.save()
}

// ClearFaults undoes the recorded faults, newest first; with node set,
// only that node's.
func (l *Lab) ClearFaults(ctx context.Context, node string) ([]LabFault, error) {
	if node != "" {
		n, err := l.Node(node)
		if err != nil {
			return nil, err
		}
		node = n.Name
	}
	var cleared, kept []LabFault
	var firstErr error
	for i := len(l.state.Faults) - 1; i >= 0; i-- {
		f := l.state.Faults[i]
		if node != "" && f.Node != node {
			kept = append([]LabFault{f}, kept...)
			continue
		}
		if err := l.clear(ctx, f); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			kept = append([]LabFault{f}, kept...)
			continue
		}
		cleared = append(cleared, f)
	}
	l.state.Faults = kept
	if err := l.save(); err != nil && firstErr == nil {
		firstErr = err
	}
	return cleared, firstErr
}

func (l *Lab) clear(ctx context.Context, f LabFault) error {
	n, err := l.Node(f.Node)
	if err != nil {
		return err
	}
	switch f.Kind {
	case LabACLDrop:
		switch {
		case !f.HadTable:
			return run(ctx, "ip", "netns", "exec", n.NetNS, "nft", "delete", "table", "inet", "d2d")
		case !f.HadACL:
			// The ACL's base chain first: it jumps to the verdict chain.
			script := fmt.Sprintf("flush chain inet d2d acl-%[1]s\ndelete chain inet d2d acl-%[1]s\nflush chain inet d2d acl-%[1]s-r%[2]s\ndelete chain inet d2d acl-%[1]s-r%[2]s\n", f.ACL, f.Rule)
			cmd := l.command(ctx, n, []string{"nft", "-f", "-"})
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%w: clearing %s: %v: %s", ErrLab, f, err, out)
			}
			return nil
		default:
			b, err := linux.New(linux.Config{Node: n.D2D, NetNS: n.NetNS})
			if err != nil {
				return err
			}
			defer b.Close()
			return b.SetACLRule(ctx, f.ACL, f.Rule, false)
		}
	case LabLinkDown:
		if err := run(ctx, "ip", "-n", n.NetNS, "link", "set", f.Interface, "up"); err != nil {
			return err
		}
		return restoreLinkConfig(ctx, n.NetNS, f.Interface, f.Restore)
	case LabAgentStop:
		if err := l.startAgent(n.Name); err != nil {
			return err
		}
		return l.waitReady(ctx, []string{n.Name})
	}
	return fmt.Errorf("%w: unknown fault kind %q", ErrLab, f.Kind)
}

// linkConfig lists what a link's interface holds that the kernel drops
// when the link goes down, as ip(8) arguments that add it again: its
// global addresses (IPv6 ones, unless keep_addr_on_down holds them) and
// the routes through it that configuration installed (protocol boot or
// static, ids 3 and 4; the kernel's own routes return with the link and
// a routing daemon installs its own again).
func linkConfig(ctx context.Context, ns, dev string) ([][]string, error) {
	var out [][]string
	b, err := exec.CommandContext(ctx, "ip", "-n", ns, "-j", "addr", "show", "dev", dev).Output()
	if err != nil {
		return nil, fmt.Errorf("%w: addresses of %s: %v", ErrLab, dev, err)
	}
	var links []struct {
		Addrs []struct {
			Family, Local, Scope string
			Prefixlen            int
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(b, &links); err != nil {
		return nil, fmt.Errorf("%w: addresses of %s: %v", ErrLab, dev, err)
	}
	for _, l := range links {
		for _, a := range l.Addrs {
			if a.Scope != "global" {
				continue
			}
			args := []string{"addr", "add", fmt.Sprintf("%s/%d", a.Local, a.Prefixlen), "dev", dev}
			if a.Family == "inet6" {
				args = append([]string{"-6"}, append(args, "nodad")...)
			}
			out = append(out, args)
		}
	}
	for _, family := range []string{"-4", "-6"} {
		b, err := exec.CommandContext(ctx, "ip", "-n", ns, "-N", "-j", family, "route", "show", "table", "all").Output()
		if err != nil {
			return nil, fmt.Errorf("%w: routes through %s: %v", ErrLab, dev, err)
		}
		var routes []kernelRoute
		if err := json.Unmarshal(b, &routes); err != nil {
			return nil, fmt.Errorf("%w: routes through %s: %v", ErrLab, dev, err)
		}
		for _, r := range routes {
			if args, ok := r.addArgs(family, dev); ok {
				out = append(out, args)
			}
		}
	}
	return out, nil
}

// kernelRoute is one entry of `ip -N -j route show`: numbers for protocol,
// scope, type and table.
type kernelRoute struct {
	Type, Dst, Gateway, Dev, Table, Protocol, Scope, Prefsrc string
	Metric                                                   int
	Nexthops                                                 []struct {
		Gateway, Dev string
		Weight       int
	}
}

// addArgs returns the arguments that add r again, if r is a configured
// unicast route through dev.
func (r kernelRoute) addArgs(family, dev string) ([]string, bool) {
	if r.Type != "" && r.Type != "1" || r.Protocol != "" && r.Protocol != "3" && r.Protocol != "4" {
		return nil, false
	}
	through := r.Dev == dev
	for _, h := range r.Nexthops {
		through = through || h.Dev == dev
	}
	if !through {
		return nil, false
	}
	args := []string{family, "route", "add", r.Dst}
	if r.Table != "" {
		args = append(args, "table", r.Table)
	}
	if r.Protocol != "" {
		args = append(args, "proto", r.Protocol)
	}
	if r.Metric != 0 {
		args = append(args, "metric", strconv.Itoa(r.Metric))
	}
	if r.Scope != "" {
		args = append(args, "scope", r.Scope)
	}
	if r.Prefsrc != "" {
		args = append(args, "src", r.Prefsrc)
	}
	if r.Gateway != "" {
		args = append(args, "via", r.Gateway)
	}
	if r.Dev != "" {
		args = append(args, "dev", r.Dev)
	}
	for _, h := range r.Nexthops {
		args = append(args, "nexthop", "via", h.Gateway, "dev", h.Dev)
		if h.Weight > 0 {
			args = append(args, "weight", strconv.Itoa(h.Weight))
		}
	}
	return args, true
}

// restoreLinkConfig adds back what linkConfig listed and the interface
// no longer holds (keep_addr_on_down keeps IPv6 addresses; IPv4
// addresses stay with the interface).
func restoreLinkConfig(ctx context.Context, ns, dev string, cmds [][]string) error {
	now, err := linkConfig(ctx, ns, dev)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, args := range now {
		have[strings.Join(args, " ")] = true
	}
	for _, args := range cmds {
		if have[strings.Join(args, " ")] {
			continue
		}
		if out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("%w: restoring ip %s: %v: %s", ErrLab, strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}
