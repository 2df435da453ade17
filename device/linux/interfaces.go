package linux

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/d2dmesh/d2d/device"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Interfaces returns every link of the namespace with its addresses and
// RFC 8343 counters.
func (b *Backend) Interfaces(ctx context.Context) ([]device.Interface, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	links, err := b.nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("linux: list links: %w", permission(err))
	}
	addrs, err := b.nl.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("linux: list addresses: %w", permission(err))
	}
	byIndex := make(map[int][]string, len(links))
	for _, a := range addrs {
		byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], a.IPNet.String())
	}
	speeds := b.speeds(links)

	now := time.Now()
	out := make([]device.Interface, 0, len(links))
	b.mu.Lock()
	seen := make(map[string]bool, len(links))
	for _, l := range links {
		k := linkKey(l)
		seen[k] = true
		if _, ok := b.firstSeen[k]; !ok {
			b.firstSeen[k] = now
		}
		out = append(out, convertLink(l, byIndex[l.Attrs().Index], speeds[l.Attrs().Index], b.firstSeen[k]))
	}
	for k := range b.firstSeen {
		if !seen[k] {
			delete(b.firstSeen, k) // a link that comes back is a new discontinuity
		}
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y device.Interface) int { return x.IfIndex - y.IfIndex })
	return out, nil
}

// interfaceByName returns the link called name, or an error wrapping
// device.ErrUnknownInterface.
func (b *Backend) interfaceByName(name string) (netlink.Link, error) {
	l, err := b.nl.LinkByName(name)
	if err != nil {
		if _, ok := err.(netlink.LinkNotFoundError); ok {
			return nil, fmt.Errorf("linux: interface %q: %w", name, device.ErrUnknownInterface)
		}
		return nil, fmt.Errorf("linux: interface %q: %w", name, permission(err))
	}
	return l, nil
}

func linkKey(l netlink.Link) string {
	return strconv.Itoa(l.Attrs().Index) + "/" + l.Attrs().Name
}

func convertLink(l netlink.Link, addrs []string, speedMbps uint32, since time.Time) device.Interface {
	a := l.Attrs()
	up := a.OperState == netlink.OperUp ||
		// Loopback and some virtual links never report an operational
		// state; a link that is up with carrier is up (RFC 8343 "unknown").
		(a.OperState == netlink.OperUnknown && a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0)
	ifc := device.Interface{
		Name:      a.Name,
		Type:      ifType(l),
		Enabled:   a.Flags&net.FlagUp != 0,
		OperUp:    up,
		IfIndex:   a.Index,
		Addresses: addrs,
		Stats:     device.InterfaceStats{DiscontinuityTime: since.UTC()},
	}
	if len(a.HardwareAddr) > 0 && ifc.Type != "iana-if-type:softwareLoopback" {
		ifc.PhysAddress = a.HardwareAddr.String()
	}
	if speedMbps > 0 {
		ifc.SpeedBPS = uint64(speedMbps) * 1_000_000
	}
	if s := a.Statistics; s != nil {
		ifc.Stats.InOctets = s.RxBytes
		ifc.Stats.InMulticastPkts = s.Multicast
		ifc.Stats.InUnicastPkts = s.RxPackets - min(s.Multicast, s.RxPackets)
		ifc.Stats.InDiscards = s.RxDropped
		ifc.Stats.InErrors = s.RxErrors
		ifc.Stats.OutOctets = s.TxBytes
		ifc.Stats.OutUnicastPkts = s.TxPackets
		ifc.Stats.OutDiscards = s.TxDropped
		ifc.Stats.OutErrors = s.TxErrors
	}
	return ifc
}

// ifType maps a Linux link to its iana-if-type identity (RFC 7224).
func ifType(l netlink.Link) string {
	a := l.Attrs()
	if a.Flags&net.FlagLoopback != 0 || a.EncapType == "loopback" {
		return "iana-if-type:softwareLoopback"
	}
	switch l.Type() {
	case "veth", "macvlan", "macvtap", "ipvlan", "ipvtap":
		return "iana-if-type:ethernetCsmacd"
	case "bridge":
		return "iana-if-type:bridge"
	case "vlan":
		return "iana-if-type:l2vlan"
	case "bond":
		return "iana-if-type:ieee8023adLag"
	case "gre", "gretap", "ip6gre", "ip6gretap", "ipip", "ip6tnl", "sit", "vti", "vti6", "vxlan", "geneve", "wireguard", "xfrm":
		return "iana-if-type:tunnel"
	case "tuntap", "dummy", "vrf", "ifb", "netkit":
		return "iana-if-type:propVirtual"
	}
	switch a.EncapType {
	case "ether":
		return "iana-if-type:ethernetCsmacd"
	case "ppp":
		return "iana-if-type:ppp"
	case "none", "":
		return "iana-if-type:other"
	}
	return "iana-if-type:other"
}

// ethtoolCmd is struct ethtool_cmd of <linux/ethtool.h> (ETHTOOL_GSET).
type ethtoolCmd struct {
	Cmd           uint32
	Supported     uint32
	Advertising   uint32
	Speed         uint16
	Duplex        uint8
	Port          uint8
	PhyAddress    uint8
	Transceiver   uint8
	Autoneg       uint8
	MdioSupport   uint8
	Maxtxpkt      uint32
	Maxrxpkt      uint32
	SpeedHi       uint16
	EthTpMdix     uint8
	EthTpMdixCtrl uint8
	LpAdvertising uint32
	Reserved      [2]uint32
}

type ifreqData struct {
	Name [unix.IFNAMSIZ]byte
	Data unsafe.Pointer
	_    [16]byte
}

// speeds asks the drivers for their link speed in Mb/s; links that do
// not say are missing from the map.
func (b *Backend) speeds(links []netlink.Link) map[int]uint32 {
	out := make(map[int]uint32)
	var fd int
	if err := b.do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return out
	}
	defer unix.Close(fd)
	for _, l := range links {
		name := l.Attrs().Name
		if len(name) >= unix.IFNAMSIZ {
			continue
		}
		cmd := &ethtoolCmd{Cmd: unix.ETHTOOL_GSET}
		var req ifreqData
		copy(req.Name[:], name)
		req.Data = unsafe.Pointer(cmd)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req)))
		if errno != 0 {
			continue
		}
		speed := uint32(cmd.SpeedHi)<<16 | uint32(cmd.Speed)
		if speed != 0 && speed != 0xffff && speed != 0xffffffff {
			out[l.Attrs().Index] = speed
		}
	}
	return out
}
