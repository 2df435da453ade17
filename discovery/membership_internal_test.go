package discovery

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/memberlist"
)

func TestMembershipLogLevels(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string
	}{
		{name: "debug", line: "[DEBUG] memberlist: Initiating push/pull sync with: 10.0.0.2:7946", want: "level=DEBUG msg=\"Initiating push/pull sync with: 10.0.0.2:7946\" component=membership\n"},
		{name: "warn", line: "[WARN] memberlist: Refuting a dead message (from: n1)", want: "level=WARN msg=\"Refuting a dead message (from: n1)\" component=membership\n"},
		{name: "err", line: "[ERR] memberlist: Failed to send gossip", want: "level=ERROR msg=\"Failed to send gossip\" component=membership\n"},
		{name: "info", line: "[INFO] memberlist: Marking n2 as failed", want: "level=INFO msg=\"Marking n2 as failed\" component=membership\n"},
		{name: "untagged", line: "plain line", want: "level=INFO msg=\"plain line\" component=membership\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level: slog.LevelDebug,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			})
			memberlistLogger(slog.New(h).With("component", "membership")).Printf("%s", tt.line)
			if diff := cmp.Diff(tt.want, buf.String()); diff != "" {
				t.Errorf("log output (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMembershipDecodeMember(t *testing.T) {
	ok := Advertisement{Node: "n1", Capabilities: []string{"ietf-ping"}, Endpoint: netip.MustParseAddrPort("10.0.0.1:9514")}
	okMeta, err := ok.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	portMeta, err := (&Advertisement{Node: "n1", Endpoint: netip.AddrPortFrom(netip.Addr{}, 9514)}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	other, err := (&Advertisement{Node: "impostor"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		meta    []byte
		want    Advertisement
		wantBad bool
	}{
		{name: "valid", meta: okMeta, want: ok},
		{name: "port only takes the gossip address", meta: portMeta, want: Advertisement{Node: "n1", Endpoint: netip.MustParseAddrPort("10.9.9.9:9514")}},
		{name: "truncated", meta: okMeta[:5], want: Advertisement{Node: "n1"}, wantBad: true},
		{name: "other name", meta: other, want: Advertisement{Node: "n1"}, wantBad: true},
		{name: "empty", meta: nil, want: Advertisement{Node: "n1"}, wantBad: true},
	}
	m := &Membership{cfg: MembershipConfig{Self: Advertisement{Node: "me"}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := m.decodeMember(&memberlist.Node{Name: "n1", Addr: net.IPv4(10, 9, 9, 9), Port: 7946, Meta: tt.meta})
			if (got.Err != nil) != tt.wantBad {
				t.Errorf("Err = %v, want bad metadata %v", got.Err, tt.wantBad)
			}
			if tt.wantBad && !errors.Is(got.Err, ErrBadMetadata) {
				t.Errorf("Err = %v, want ErrBadMetadata", got.Err)
			}
			if diff := cmp.Diff(tt.want, got.Advertisement, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("advertisement (-want +got):\n%s", diff)
			}
			if want := netip.MustParseAddrPort("10.9.9.9:7946"); got.Addr != want {
				t.Errorf("Addr = %v, want %v", got.Addr, want)
			}
		})
	}
}
