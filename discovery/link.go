package discovery

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Mode selects the link-level encoding of the advertisement.
type Mode string

// Modes.
const (
	ModeLLDP Mode = "lldp"
	ModeISIS Mode = "isis"
)

// ErrPermission reports that raw link I/O was refused for lack of
// CAP_NET_RAW.
var ErrPermission = errors.New("discovery: raw link I/O needs CAP_NET_RAW (run as root, or `setcap cap_net_raw,cap_net_admin+ep` on the d2d binary)")

// LinkInfo describes one network interface.
type LinkInfo struct {
	Name         string
	Index        int
	HardwareAddr net.HardwareAddr
	Up           bool
	Loopback     bool
}

// Link is frame I/O on one interface, receiving only the frames of one
// Mode (LLDP's ethertype, or 802.3/LLC frames for IS-IS) sent to its
// destination MAC addresses.
type Link interface {
	Info() LinkInfo
	// ReadFrame reads one whole frame into b (which should hold MaxFrame
	// bytes; longer frames are dropped). It returns an error wrapping
	// os.ErrDeadlineExceeded after the read deadline and net.ErrClosed
	// after Close.
	ReadFrame(b []byte) (int, error)
	SetReadDeadline(t time.Time) error
	WriteFrame(b []byte) error
	Close() error
}

// LinkNetwork opens Links. RawLinks is the host's network through
// AF_PACKET sockets; MemLinkNetwork simulates one in memory.
type LinkNetwork interface {
	// Interfaces lists the interfaces that exist now.
	Interfaces() ([]LinkInfo, error)
	// Open starts frame I/O of mode on the named interface.
	Open(name string, mode Mode) (Link, error)
}

// destinations returns the group MAC addresses mode listens to.
func destinations(mode Mode) []net.HardwareAddr {
	if mode == ModeISIS {
		return []net.HardwareAddr{AllL1ISs, AllL2ISs, AllISs}
	}
	return []net.HardwareAddr{LLDPMulticast}
}

// RawLinks is the LinkNetwork of the host (or of the network namespace
// the calling thread is in when Open runs), through AF_PACKET sockets
// opened without cgo. Opening needs CAP_NET_RAW.
type RawLinks struct{}

// Interfaces implements LinkNetwork with net.Interfaces.
func (RawLinks) Interfaces() ([]LinkInfo, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("discovery: list interfaces: %w", err)
	}
	out := make([]LinkInfo, 0, len(ifs))
	for _, i := range ifs {
		out = append(out, LinkInfo{
			Name: i.Name, Index: i.Index, HardwareAddr: slices.Clone(i.HardwareAddr),
			Up: i.Flags&net.FlagUp != 0, Loopback: i.Flags&net.FlagLoopback != 0,
		})
	}
	return out, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Open implements LinkNetwork. The socket is bound to the interface and
// to an ethertype (0x88cc for LLDP; ETH_P_802_2, the kernel's class of
// 802.3 frames carrying LLC, for IS-IS), so the kernel filters everything
// else out, and joins the mode's multicast groups (PACKET_ADD_MEMBERSHIP)
// so that a NIC filtering multicast delivers them.
func (RawLinks) Open(name string, mode Mode) (Link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("discovery: interface %s: %w", name, err)
	}
	proto := uint16(EtherTypeLLDP)
	if mode == ModeISIS {
		proto = unix.ETH_P_802_2
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(proto)))
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%w: %s: %w", ErrPermission, name, err)
		}
		return nil, fmt.Errorf("discovery: AF_PACKET socket on %s: %w", name, err)
	}
	fail := func(what string, err error) (Link, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("discovery: %s on %s: %w", what, name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	for _, mac := range destinations(mode) {
		mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
		copy(mreq.Address[:], mac)
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fail("PACKET_ADD_MEMBERSHIP", err)
		}
	}
	// Our own transmissions would loop back to us otherwise (Linux 4.20+;
	// ReadFrame also drops outgoing frames on older kernels).
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	f := os.NewFile(uintptr(fd), "packet:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("discovery: %s: %w", name, err)
	}
	return &rawLink{
		info: LinkInfo{Name: ifi.Name, Index: ifi.Index, HardwareAddr: slices.Clone(ifi.HardwareAddr),
			Up: ifi.Flags&net.FlagUp != 0, Loopback: ifi.Flags&net.FlagLoopback != 0},
		f: f, rc: rc,
	}, nil
}

type rawLink struct {
	info   LinkInfo
	f      *os.File
	closed atomic.Bool
	rc     interface {
		Read(func(uintptr) bool) error
		Write(func(uintptr) bool) error
	}
}

func (l *rawLink) Info() LinkInfo { return l.info }

func (l *rawLink) SetReadDeadline(t time.Time) error { return l.f.SetReadDeadline(t) }

func (l *rawLink) ReadFrame(b []byte) (int, error) {
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := l.rc.Read(func(fd uintptr) bool {
			// MSG_TRUNC makes n the frame's real length, so that an
			// oversized frame is noticed and dropped rather than cut.
			n, from, rerr = unix.Recvfrom(int(fd), b, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			if l.closed.Load() || errors.Is(err, os.ErrClosed) {
				return 0, fmt.Errorf("discovery: read %s: %w", l.info.Name, net.ErrClosed)
			}
			return 0, fmt.Errorf("discovery: read %s: %w", l.info.Name, err)
		}
		if rerr != nil {
			return 0, fmt.Errorf("discovery: read %s: %w", l.info.Name, rerr)
		}
		if sll, ok := from.(*unix.SockaddrLinklayer); ok && sll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n > len(b) {
			continue
		}
		return n, nil
	}
}

func (l *rawLink) WriteFrame(b []byte) error {
	if len(b) > MaxFrame {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(b))
	}
	var werr error
	err := l.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), b)
		return werr != unix.EAGAIN
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		if l.closed.Load() || errors.Is(err, os.ErrClosed) {
			err = net.ErrClosed
		}
		return fmt.Errorf("discovery: write %s: %w", l.info.Name, err)
	}
	return nil
}

func (l *rawLink) Close() error {
	l.closed.Store(true)
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("discovery: close %s: %w", l.info.Name, net.ErrClosed)
	}
	return nil
}
