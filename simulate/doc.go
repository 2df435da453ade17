// Package simulate is an in-memory network of simulated devices with
// fault injection. Each device implements device.Backend, so the device
// registry, the collaboration workflow and the contract suite of package
// device/devicetest run on it without root, containers or a kernel.
//
// # Model
//
// A Topology (YAML or JSON, see ParseTopology) lists nodes with SRv6
// locators and End SIDs, interfaces, ACLs, BGP and BFD sessions, and
// point-to-point links with latency, IGP metric, per-direction loss and a
// down flag. Nothing is special about any node name; Triangle is just the
// data of the headline scenario.
//
// Packets follow the IGP shortest path (by metric, over links that are
// up). An SRv6 probe goes from the head to each segment's node in turn;
// the segment's SID must be instantiated there, else the probe is dropped
// and the result's error names the SID. The reply returns by plain
// routing. On every link crossing, the sender's egress ACLs are applied
// (first enabled matching rule decides; a rule with a rate matches that
// fraction of packets; a packet no rule matches passes), then the link's
// loss in that direction, then the receiver's ingress ACLs. Interface
// octet, packet and discard counters and ACL rule counters move as
// packets pass. RTTs are the sum of link latencies with up to 5 % jitter
// plus a small per-hop forwarding delay; probes take no wall-clock time
// unless SetRealtime is on.
//
// BGP sessions are Established when both sides configure them and each
// reaches the other; BFD sessions are Up while their link is up. A
// SessionDown fault is one-sided: the faulted side shows Idle (BGP) or
// Down (BFD), the other side keeps what it last heard (Established, Up),
// which is what makes such faults hard to see from one box.
//
// # Determinism
//
// Every node draws from its own random stream seeded from the network
// seed and the node name, and all state is behind one mutex: the results
// a device returns depend only on the seed and the sequence of calls made
// on that device (and the faults in force), not on other devices' calls.
//
// # Faults
//
// Inject applies a Fault (ACLDrop, LinkLoss, LinkDown, MissingSID,
// SessionDown) and returns its undo. ParseFault reads the command-line
// form, e.g. "acl-drop:PE-1:2001:P-2:0.03" or "link-loss:P-2:PE-3:5%";
// its doc gives the grammar.
//
// # Domains, the demo, labs and scale
//
// StartDomain runs one real agent (package node) per topology node in this
// process, each with its own certificate, D2D endpoint and admin socket,
// over loopback QUIC or an in-memory datagram network
// (DomainConfig.Transport), with gossip membership joined through topology
// neighbours or a static member list. Demo drives the headline scenario
// through a node's chat shell. LabUp runs containerlab topology files on
// the real kernel: one network namespace per node, veth pairs per link, the
// nodes' exec commands, and a real `d2d agent` process per node with the
// Linux backend. The scale harness (scale.go) generates line, ring,
// leaf-spine and random topologies and measures time to a verified report
// and D2D against controller polling.
package simulate
