package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/d2dmesh/d2d/discovery"
	"github.com/gopacket/gopacket/layers"
)

func init() {
	register(command{
		name:    "discovery listen",
		summary: "run link discovery on interfaces and print neighbour events (needs CAP_NET_RAW)",
		run:     runDiscoveryListen,
	})
	register(command{
		name:    "discovery encode",
		summary: "print the LLDP or IS-IS frame of an advertisement in hex",
		run:     runDiscoveryEncode,
	})
}

// advFlags adds the advertisement flags shared by both subcommands.
func advFlags(fs interface {
	StringVar(*string, string, string, string)
	UintVar(*uint, string, uint, string)
}) func() (discovery.Advertisement, error) {
	var node, caps, thumb, addr string
	var port, gossip uint
	fs.StringVar(&node, "node", "", "node name to advertise")
	fs.StringVar(&caps, "caps", "", "comma-separated capabilities to advertise")
	fs.StringVar(&thumb, "thumbprint", "", "certificate SHA-256 thumbprint, 64 hex digits")
	fs.StringVar(&addr, "addr", "", "D2D endpoint address")
	fs.UintVar(&port, "port", discovery.DefaultPort, "D2D port")
	fs.UintVar(&gossip, "gossip-port", 0, "membership port (0: none)")
	return func() (discovery.Advertisement, error) {
		a := discovery.Advertisement{Node: node, GossipPort: uint16(gossip)}
		if caps != "" {
			a.Capabilities = strings.Split(caps, ",")
		}
		if thumb != "" {
			b, err := hex.DecodeString(thumb)
			if err != nil || len(b) != 32 {
				return a, usageErr("-thumbprint wants 64 hex digits")
			}
			copy(a.Thumbprint[:], b)
		}
		var ip netip.Addr
		if addr != "" {
			var err error
			if ip, err = netip.ParseAddr(addr); err != nil {
				return a, usageErr("-addr: " + err.Error())
			}
		}
		if port > 65535 || gossip > 65535 {
			return a, usageErr("ports are at most 65535")
		}
		a.Endpoint = netip.AddrPortFrom(ip, uint16(port))
		return a, nil
	}
}

func runDiscoveryListen(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "discovery listen")
	ifaces := fs.String("iface", "", "comma-separated interfaces (default: all non-loopback up)")
	mode := fs.String("mode", "lldp", "lldp or isis")
	interval := fs.Duration("interval", 30*time.Second, "transmit interval")
	hold := fs.Duration("holdtime", 0, "neighbour holdtime (default 4 × interval)")
	adv := advFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := adv()
	if err != nil {
		return err
	}
	cfg := discovery.LinkConfig{Mode: discovery.Mode(*mode), Interval: *interval, Holdtime: *hold, Self: a}
	if *ifaces != "" {
		cfg.Interfaces = strings.Split(*ifaces, ",")
	}
	agent, err := discovery.NewLinkAgent(cfg)
	if err != nil {
		return err
	}
	events, cancel := agent.Subscribe()
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	for {
		select {
		case err := <-done:
			agent.Close()
			if ctx.Err() != nil {
				return nil
			}
			return err
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			n := ev.Neighbor
			d2d := "-"
			if n.D2D {
				d2d = fmt.Sprintf("d2d port=%d caps=%s thumbprint=%x", n.Adv.Endpoint.Port(),
					strings.Join(n.Adv.Capabilities, ","), n.Adv.Thumbprint[:8])
			}
			hop := "direct"
			if !n.Direct {
				hop = "flooded"
			}
			fmt.Fprintf(env.stdout, "%s %-7s %s chassis=%s name=%q port=%q %s %s\n",
				time.Now().Format(time.TimeOnly), ev.Kind, n.Interface, n.Chassis, n.SystemName, n.Port, hop, d2d)
		}
	}
}

func runDiscoveryEncode(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "discovery encode")
	mode := fs.String("mode", "lldp", "lldp or isis")
	src := fs.String("src", "02:00:00:00:00:01", "source MAC (and LLDP chassis ID)")
	portID := fs.String("port-id", "eth0", "LLDP port ID (interface name)")
	adv := advFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, err := adv()
	if err != nil {
		return err
	}
	mac, err := net.ParseMAC(*src)
	if err != nil || len(mac) != 6 {
		return usageErr("-src wants a MAC address")
	}
	var frame []byte
	switch discovery.Mode(*mode) {
	case discovery.ModeLLDP:
		f := discovery.LLDPFrame{Src: mac, TTL: 120, SystemName: a.Node, MgmtAddr: a.Endpoint.Addr(), Adv: &a,
			ChassisID: layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeMACAddr, ID: mac},
			PortID:    layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypeIfaceName, ID: []byte(*portID)}}
		frame, err = f.MarshalBinary()
	case discovery.ModeISIS:
		var id discovery.LSPID
		copy(id[:], mac)
		f := discovery.ISISFrame{Src: mac, LSP: discovery.ISISLSP{RemainingLifetime: discovery.DefaultLSPLifetime,
			LSPID: id, Sequence: 1, Hostname: a.Node, AppAddr: a.Endpoint.Addr(), Adv: &a}}
		frame, err = f.MarshalBinary()
	default:
		return usageErr("-mode wants lldp or isis")
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, hex.EncodeToString(frame))
	return nil
}
