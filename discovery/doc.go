// Package discovery finds D2D collaboration agents on directly attached
// links and beyond (docs/ARCHITECTURE.md §3.1, draft-zm-rtgwg-mcp-troubleshooting-01
// §5.3.1): a node advertises its name, D2D endpoint, capabilities and
// certificate thumbprint in LLDP (IEEE 802.1AB) or IS-IS (ISO/IEC 10589)
// frames, and keeps a table of the neighbours it hears.
//
// # Advertisement sub-TLVs
//
// Both encodings carry the same block of sub-TLVs (Advertisement's
// AppendBinary/UnmarshalBinary); unknown types are skipped:
//
//	+--------+--------+----------------+
//	| type   | length | value          |   type, length: 1 byte each
//	+--------+--------+----------------+
//	1 node name        1..240 bytes UTF-8
//	2 D2D port         2 bytes, big endian (9514 by default)
//	3 thumbprint       32 bytes, SHA-256 of the DER certificate
//	4 capability       1..240 bytes, one per sub-TLV, repeatable
//	5 endpoint address 4 (IPv4) or 16 (IPv6) bytes
//	6 gossip port      2 bytes (membership listener)
//
// Names stop at 240 bytes so that one sub-TLV always fits a GENINFO TLV.
//
// # LLDP
//
// Destination 01:80:c2:00:00:0e, ethertype 0x88cc. The frame is an
// ordinary LLDPDU; the advertisement rides in organisationally specific
// TLVs under the IANA OUI 00-00-5E with the provisional subtype 0xD2
// (DefaultLLDPSubtype, configurable). A block longer than one TLV's 507
// bytes of information continues, on a sub-TLV boundary, in further TLVs
// of the same subtype; the decoder concatenates them in order.
//
//	Chassis ID (1)  subtype 4 MAC          | chassis MAC (lowest ifindex)
//	Port ID (2)     subtype 5 if-name      | "eth1"
//	TTL (3)         2 bytes                | ceil(Holdtime) seconds
//	System Name (5)                        | node name
//	Mgmt Address (8) len, family, addr, 2 (ifIndex), ifindex, OID len 0
//	Org specific (127):
//	  +-------+---------+----------+----------------+---------------+
//	  | 127/7 | len/9   | 00-00-5E | subtype 0xD2   | sub-TLVs ...  |
//	  +-------+---------+----------+----------------+---------------+
//	End (0)
//
// Wireshark 4.0 shows the D2D TLV as "ICANN, IANA Department - Unknown
// subtype" and, through a quirk of its IANA dissector, the last three
// bytes of the LLDPDU as an Ethernet trailer; lldpd lists it among
// unknown TLVs.
//
// # IS-IS
//
// There is no IS-IS layer in gopacket, so this package registers one
// (LayerTypeISIS) that decodes on top of gopacket's LLC layer. An agent
// originates a Level 1 LSP (Level 2 configurable) every Interval:
//
//	802.3:  dst AllL1ISs 01:80:c2:00:00:14 (L2: AllL2ISs ..:15;
//	        re-floods: AllISs 09:00:2b:00:00:05) | src | length
//	LLC:    DSAP 0xFE | SSAP 0xFE | control 0x03
//	Common: 0x83 | 27 | 1 | 0 (ID length 6) | 18 (L1 LSP) or 20 | 1 | 0 | 0
//	LSP:    PDU length (2) | remaining lifetime (2) |
//	        LSP ID = system ID (6) + pseudonode 0 + fragment 0 |
//	        sequence number (4) | Fletcher checksum (2) | type block (1)
//	TLV 137 dynamic hostname (RFC 5301): node name
//	TLV 251 GENINFO (RFC 6823), repeated while the block needs more room:
//	  +-----+-----+-------+-----------+----------------------+-----------+
//	  | 251 | len | flags | App ID    | [6/4 IPv4 | 12/16    | sub-TLVs  |
//	  |     |     | ..VI..| 0x0D2D    |  IPv6 address]       | ...       |
//	  +-----+-----+-------+-----------+----------------------+-----------+
//
// The Application ID 0x0D2D (DefaultAppID) is provisional and
// configurable; the I (0x04) or V (0x08) flag announces the optional
// application address sub-TLV in the first GENINFO TLV only. The system
// ID defaults to the first six bytes of SHA-256 of the node name. The
// checksum covers the PDU from the LSP ID on (ISO/IEC 10589 §7.3.11), so
// remaining lifetime can change in flight.
//
// Flooding follows IS-IS's update process in miniature: an LSP with a
// newer sequence number than the one held is stored and re-sent verbatim,
// but for a lifetime one second lower (never below one), on every other
// link, to AllISs; an equal sequence number refreshes the table only; an
// older one is dropped; a zero lifetime purges. Sequence numbers start
// from the Unix time so a restarted node wins over its old copies. A
// receiver marks an LSP that came to AllL1ISs/AllL2ISs as from a direct
// neighbour (Hops 1) and one that came to AllISs as flooded (Direct false,
// Hops 0: unknown). Without IS-IS hellos this is the adjacency signal.
//
// # Link I/O and the agent
//
// LinkAgent runs one of the two modes over a LinkNetwork: RawLinks opens
// AF_PACKET sockets (golang.org/x/sys/unix, no cgo) bound to the
// interface and to the mode's ethertype (0x88cc, or ETH_P_802_2 for
// 802.3/LLC frames), joined to the mode's multicast groups with
// PACKET_ADD_MEMBERSHIP, reading at most MaxFrame bytes. Raw sockets need
// CAP_NET_RAW: run as root or grant the binary
//
//	setcap cap_net_raw,cap_net_admin+ep ./d2d
//
// MemLinkNetwork is the same contract in memory, for tests and
// simulations without privileges. The agent re-reads the interface list
// every PollInterval (interfaces coming and going), transmits every
// Interval (30 s by default, as LLDP), and expires a neighbour Holdtime
// (4 × Interval) after its last frame, or sooner if the sender's TTL or
// LSP lifetime says so. Neighbors returns the table; Subscribe streams
// Added, Changed and Expired events. An LLDP speaker without the D2D TLV
// (lldpd, a switch) is listed with D2D false.
//
// # Domain membership
//
// Membership reaches the members more than one hop away (docs/ARCHITECTURE.md
// §3.1): a hashicorp/memberlist cluster joined through the gossip ports
// of discovered neighbours (JoinFromNeighbours), whose member metadata is
// the same sub-TLV advertisement block, so every member learns every
// other member's endpoint, capabilities and thumbprint (Members, Lookup,
// Subscribe). Metadata is at most 512 bytes (MaxMetadataLen): name,
// port, thumbprint, an IPv6 endpoint address and gossip port take 62
// bytes plus the name, so with a 32-byte name about 400 bytes remain for
// capabilities, 2 bytes of header each (e.g. twenty 18-byte names).
// Gossip is encrypted with the domain key (AES-GCM, 16/24/32 bytes),
// required on real networks. MemNetwork is an in-memory transport for
// simulating thousands of members in one process.
package discovery
