package linux

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/d2dmesh/d2d/device"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// rateModulus is the resolution of InstallACLDrop's rate: 1/10000 (0.01 %).
const rateModulus = 10000

// aclChain and verdictChain name the nftables chains of ACL acl and of
// its rule (see the package documentation).
func aclChain(acl string) string           { return "acl-" + acl }
func verdictChain(acl, rule string) string { return "acl-" + acl + "-r" + rule }

func (b *Backend) nft() (*nftables.Conn, error) {
	var c *nftables.Conn
	var err error
	if b.ns >= 0 {
		c, err = nftables.New(nftables.WithNetNSFd(int(b.ns)))
	} else {
		c, err = nftables.New()
	}
	if err != nil {
		return nil, fmt.Errorf("linux: nftables: %w", permission(err))
	}
	return c, nil
}

func (b *Backend) table() *nftables.Table {
	return &nftables.Table{Name: b.cfg.ACLTable, Family: nftables.TableFamilyINet}
}

// InstallACLDrop installs rule `rule` of egress ACL `acl` on interface
// iface: it drops packets leaving iface with probability rate (0 < rate ≤ 1,
// resolution 0.01 %), using nftables `numgen random mod 10000 < N`. It
// serves the lab and the tests that recreate the headline scenario. An
// existing rule with the same ACL and ID is replaced, in the same batch.
// Call Cleanup to remove every ACL.
func (b *Backend) InstallACLDrop(ctx context.Context, acl, rule, iface string, rate float64) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if !validID(acl) || !validID(rule) {
		return fmt.Errorf("linux: ACL %q rule %q: names must be non-empty without spaces, '=' or ','", acl, rule)
	}
	if !(rate > 0 && rate <= 1) {
		return fmt.Errorf("linux: ACL %s rule %s: rate %v outside (0, 1]", acl, rule, rate)
	}
	if _, err := b.interfaceByName(iface); err != nil {
		return err
	}
	b.aclMu.Lock()
	defer b.aclMu.Unlock()
	c, err := b.nft()
	if err != nil {
		return err
	}
	t := b.table()
	if err := b.ensureTable(c, t); err != nil {
		return err
	}
	base := &nftables.Chain{Name: aclChain(acl), Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityFilter}
	old, err := b.findRule(c, acl, rule)
	if err != nil {
		return err
	}
	c.AddChain(base)
	vc := c.AddChain(&nftables.Chain{Name: verdictChain(acl, rule), Table: t})
	c.FlushChain(vc)
	c.AddRule(&nftables.Rule{Table: t, Chain: vc, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	if old != nil {
		if err := c.DelRule(old.rule); err != nil {
			return fmt.Errorf("linux: ACL %s rule %s: %w", acl, rule, err)
		}
	}
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(iface)},
	}
	if n := uint32(math.Round(rate * rateModulus)); n < rateModulus {
		// numgen leaves a host-order integer; cmp compares bytes, so turn it
		// big-endian first, as nft itself does.
		exprs = append(exprs,
			&expr.Numgen{Register: 1, Modulus: rateModulus, Type: unix.NFT_NG_RANDOM},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
			&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binary.BigEndian.AppendUint32(nil, max(n, 1))},
		)
	}
	exprs = append(exprs, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: vc.Name})
	c.AddRule(&nftables.Rule{Table: t, Chain: base, Exprs: exprs,
		UserData: userdata.AppendString(nil, userdata.TypeComment, comment(acl, rule, "deny"))})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("linux: install ACL %s rule %s: %w", acl, rule, permission(err))
	}
	return nil
}

func (b *Backend) ensureTable(c *nftables.Conn, t *nftables.Table) error {
	c.AddTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("linux: nftables table %s: %w", t.Name, permission(err))
	}
	return nil
}

// ACLs returns every ACL of the table with its rules, counters and state.
// Rules without an "acl=… rule=…" comment are not ACL rules and are left out.
func (b *Backend) ACLs(ctx context.Context) ([]device.ACL, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	c, err := b.nft()
	if err != nil {
		return nil, err
	}
	rules, err := b.aclRules(c)
	if err != nil {
		return nil, err
	}
	out := []device.ACL{}
	idx := map[string]int{}
	for _, r := range rules {
		i, ok := idx[r.acl]
		if !ok {
			i = len(out)
			idx[r.acl] = i
			out = append(out, device.ACL{Name: r.acl, Interface: r.iface, Direction: r.direction, Rules: []device.ACLRule{}})
		}
		out[i].Rules = append(out[i].Rules, device.ACLRule{
			ID: r.id, Action: r.action, Match: r.match, Enabled: r.enabled,
			MatchedPackets: r.packets, MatchedBytes: r.bytes,
		})
	}
	slices.SortStableFunc(out, func(x, y device.ACL) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// SetACLRule enables or disables a rule by filling or emptying its
// verdict chain in one nftables batch; the rule keeps matching and
// counting. Setting the state a rule already has changes nothing.
func (b *Backend) SetACLRule(ctx context.Context, acl, rule string, enabled bool) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	b.aclMu.Lock()
	defer b.aclMu.Unlock()
	c, err := b.nft()
	if err != nil {
		return err
	}
	r, err := b.findRule(c, acl, rule)
	if err != nil {
		return err
	}
	if r == nil {
		return fmt.Errorf("linux: ACL %q rule %q: %w", acl, rule, device.ErrUnknownACL)
	}
	if r.verdictChain == "" {
		return fmt.Errorf("linux: ACL %q rule %q has no verdict chain to toggle: %w", acl, rule, device.ErrUnsupported)
	}
	if r.enabled == enabled {
		return nil
	}
	t := b.table()
	vc := &nftables.Chain{Name: r.verdictChain, Table: t}
	c.FlushChain(vc)
	if enabled {
		kind := expr.VerdictDrop
		if r.action == "permit" {
			kind = expr.VerdictAccept
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: vc, Exprs: []expr.Any{&expr.Verdict{Kind: kind}}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("linux: set ACL %s rule %s enabled=%v: %w", acl, rule, enabled, permission(err))
	}
	b.log.Info("ACL rule changed", "acl", acl, "rule", rule, "enabled", enabled)
	return nil
}

// Cleanup removes the ACL table and everything in it. Without the table
// it does nothing.
func (b *Backend) Cleanup(ctx context.Context) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	b.aclMu.Lock()
	defer b.aclMu.Unlock()
	c, err := b.nft()
	if err != nil {
		return err
	}
	ok, err := b.hasTable(c)
	if err != nil || !ok {
		return err
	}
	c.DelTable(b.table())
	if err := c.Flush(); err != nil {
		return fmt.Errorf("linux: delete table %s: %w", b.cfg.ACLTable, permission(err))
	}
	return nil
}

// aclRule is one ACL rule as read back from nftables.
type aclRule struct {
	acl, id, action  string
	direction, iface string
	match            string
	enabled          bool
	packets, bytes   uint64
	verdictChain     string
	rule             *nftables.Rule
}

func (b *Backend) hasTable(c *nftables.Conn) (bool, error) {
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("linux: list nftables tables: %w", permission(err))
	}
	return slices.ContainsFunc(ts, func(t *nftables.Table) bool { return t.Name == b.cfg.ACLTable }), nil
}

func (b *Backend) findRule(c *nftables.Conn, acl, rule string) (*aclRule, error) {
	rules, err := b.aclRules(c)
	if err != nil {
		return nil, err
	}
	for i := range rules {
		if rules[i].acl == acl && rules[i].id == rule {
			return &rules[i], nil
		}
	}
	return nil, nil
}

// aclRules reads every ACL rule of the table, in chain order.
func (b *Backend) aclRules(c *nftables.Conn) ([]aclRule, error) {
	ok, err := b.hasTable(c)
	if err != nil || !ok {
		return nil, err
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("linux: list nftables chains: %w", permission(err))
	}
	t := b.table()
	var out []aclRule
	verdicts := map[string]bool{} // verdict chain → has a verdict
	for _, ch := range chains {
		if ch.Table.Name != t.Name || ch.Hooknum == nil {
			continue
		}
		dir := "egress"
		switch *ch.Hooknum {
		case *nftables.ChainHookPrerouting, *nftables.ChainHookInput:
			dir = "ingress"
		}
		rs, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("linux: rules of chain %s: %w", ch.Name, permission(err))
		}
		for _, r := range rs {
			kv := parseComment(r.UserData)
			if kv["acl"] == "" || kv["rule"] == "" {
				continue
			}
			ar := aclRule{acl: kv["acl"], id: kv["rule"], action: kv["action"], direction: dir, rule: r}
			describe(&ar, r.Exprs)
			if ar.action == "" {
				ar.action = "deny"
			}
			if ar.verdictChain != "" {
				if _, done := verdicts[ar.verdictChain]; !done {
					vrs, err := c.GetRules(t, &nftables.Chain{Name: ar.verdictChain, Table: t})
					if err != nil {
						return nil, fmt.Errorf("linux: rules of chain %s: %w", ar.verdictChain, permission(err))
					}
					verdicts[ar.verdictChain] = slices.ContainsFunc(vrs, func(r *nftables.Rule) bool {
						return slices.ContainsFunc(r.Exprs, isFinalVerdict)
					})
				}
				ar.enabled = verdicts[ar.verdictChain]
			}
			out = append(out, ar)
		}
	}
	return out, nil
}

func isFinalVerdict(e expr.Any) bool {
	v, ok := e.(*expr.Verdict)
	return ok && (v.Kind == expr.VerdictDrop || v.Kind == expr.VerdictAccept)
}

// describe fills counters, interface, match text and verdict target of a
// rule from its expressions. Expressions it does not know are ignored.
func describe(ar *aclRule, exprs []expr.Any) {
	var match []string
	var reg1 string // what register 1 was last loaded with
	var modulus uint32
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Meta:
			switch e.Key {
			case expr.MetaKeyOIFNAME:
				reg1 = "oifname"
			case expr.MetaKeyIIFNAME:
				reg1 = "iifname"
			default:
				reg1 = ""
			}
		case *expr.Numgen:
			reg1, modulus = "numgen", e.Modulus
		case *expr.Cmp:
			switch {
			case (reg1 == "oifname" || reg1 == "iifname") && e.Op == expr.CmpOpEq:
				name := string(bytes.TrimRight(e.Data, "\x00"))
				ar.iface = name
				match = append(match, fmt.Sprintf("%s %q", reg1, name))
			case reg1 == "numgen" && e.Op == expr.CmpOpLt && len(e.Data) == 4:
				match = append(match, fmt.Sprintf("numgen random mod %d < %d", modulus, binary.BigEndian.Uint32(e.Data)))
			}
		case *expr.Counter:
			ar.packets, ar.bytes = e.Packets, e.Bytes
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictJump, expr.VerdictGoto:
				ar.verdictChain = e.Chain
			}
		}
	}
	ar.match = strings.Join(match, " ")
}

// comment is the rule comment that identifies an ACL rule.
func comment(acl, rule, action string) string {
	return "acl=" + acl + " rule=" + rule + " action=" + action
}

// parseComment reads "key=value" fields, separated by spaces or commas,
// from an nftables rule comment.
func parseComment(ud []byte) map[string]string {
	s, ok := userdata.GetString(ud, userdata.TypeComment)
	if !ok {
		return nil
	}
	kv := map[string]string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func validID(s string) bool {
	return s != "" && !strings.ContainsAny(s, " =,\t\n") && len(s) < 64
}

// ifname is an interface name as nftables compares it: NUL-padded to IFNAMSIZ.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}
