// Package linux implements device.Backend on the real Linux kernel of the
// network namespace (or container) the agent runs in
// (docs/ARCHITECTURE.md §4, draft-zm-rtgwg-mcp-troubleshooting-01 §5.3.1).
//
// # What comes from where
//
//   - Interfaces: rtnetlink (links, addresses, IFLA_STATS64) mapped onto
//     ietf-interfaces (RFC 8343) with iana-if-type identities. IFLA_STATS64
//     has no transmitted-multicast counter, so OutMulticastPkts stays zero and
//     OutUnicastPkts counts every transmitted packet; InUnicastPkts is
//     received packets minus received multicast (broadcast is not counted
//     apart). The discontinuity time is the moment the backend first saw the
//     interface: the backend's start for interfaces that existed then.
//     Speed comes from the ethtool ioctl when the driver reports it.
//   - Ping and Traceroute: ICMP (RFC 792) and ICMPv6 (RFC 4443) echo over raw
//     sockets, falling back to unprivileged datagram ICMP sockets for Ping
//     when raw sockets are refused. Every run has its own echo identifier,
//     so concurrent runs never take each other's replies. Traceroute sends
//     one echo request per hop limit and reads Time Exceeded messages.
//   - SRv6Ping: the probe is built in user space and sent on an
//     IPPROTO_RAW socket: an outer IPv6 header to the first segment, a
//     Segment Routing Header (RFC 8754 §2, routing type 4, segments in
//     reverse order) and, encapsulated (next header 41), an IPv6 packet
//     carrying an ICMPv6 echo request to the tail. The tail decapsulates —
//     a seg6local End.DT6/End.DX6 SID, or an address of the tail, which the
//     kernel decapsulates itself when the SRH arrives with no segments left —
//     and answers the echo by ordinary routing. This approach was chosen
//     over a temporary `encap seg6` route because it leaves no state in the
//     kernel at all: no route can survive a crash or a cancelled context,
//     concurrent probes never collide, and the head's own traffic to the
//     tail is never diverted. The probe still crosses the head's netfilter
//     hooks, so an egress ACL drops it as it would drop customer traffic.
//     gopacket's IPv6Routing layer decodes only the deprecated type 0
//     header, hence the small hand-written builder in srh.go.
//   - ACLs: nftables (table inet <ACLTable>, "d2d" by default). Each ACL is
//     a base chain named "acl-<name>" (egress: hook postrouting, matching
//     oifname; ingress: hook prerouting, matching iifname). Each rule
//     carries a counter, the comment "acl=<name> rule=<id> action=<deny|permit>"
//     and a jump to its own verdict chain "acl-<name>-r<id>", which holds
//     the drop (deny) or accept (permit). Disabling a rule empties its
//     verdict chain, so the rule becomes counter-only and keeps counting
//     the packets it would have dropped; enabling restores the verdict.
//     Either change is one nftables batch, so it is atomic and the counters
//     are never reset. InstallACLDrop creates the probabilistic drop rule
//     of the headline scenario (numgen random mod 10000 < rate·10000).
//   - BGP and BFD: read from FRR through `vtysh -c "show bgp neighbors json"`
//     and `vtysh -c "show bfd peers json"`. A bare namespace runs no
//     routing daemon: when vtysh is not installed both lists are empty
//     and no error is returned. vtysh talks to the daemons over their
//     local sockets, so it is run as is, whatever Config.NetNS says.
//
// # Privileges
//
// Reading interfaces needs nothing. Raw sockets (SRv6Ping, Traceroute and
// the raw mode of Ping) need CAP_NET_RAW; nftables changes need
// CAP_NET_ADMIN; operating in another namespace (Config.NetNS) also needs
// CAP_SYS_ADMIN. Run the agent as root or grant the binary the first two:
//
//	setcap cap_net_raw,cap_net_admin+ep /usr/local/bin/d2d
//
// A refused operation returns an error wrapping ErrPermission that says so.
package linux
