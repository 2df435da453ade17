package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/d2dmesh/d2d/collab"
	"github.com/d2dmesh/d2d/signing"
)

func init() {
	register(command{name: "call", summary: "call one MCP method on a peer over mutual-TLS QUIC (debugging)", run: runCall})
}

// runCall: d2d call --ca CA.pem --cert C.pem --key K.pem --peer NAME@HOST:PORT
// [--thumbprint HEX] [--caps a,b] tools/list | tools/call NAME ARGSJSON |
// resources/read URI
func runCall(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "call")
	caFile := fs.String("ca", "", "domain CA certificate (PEM)")
	certFile := fs.String("cert", "", "this node's certificate (PEM)")
	keyFile := fs.String("key", "", "this node's private key (PEM)")
	peerArg := fs.String("peer", "", "NAME@HOST:PORT of the peer")
	thumb := fs.String("thumbprint", "", "expected peer certificate thumbprint (hex SHA-256)")
	caps := fs.String("caps", "", "comma-separated capabilities to request")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of the whole call")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	rest := fs.Args()
	if *caFile == "" || *certFile == "" || *keyFile == "" || *peerArg == "" || len(rest) == 0 {
		fs.Usage()
		return fmt.Errorf("%w: --ca, --cert, --key, --peer and a method are required", errUsage)
	}
	peer, err := parsePeer(*peerArg, *thumb)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	trust, err := signing.LoadTrust(*caFile)
	if err != nil {
		return err
	}
	id, err := signing.LoadIdentity(*certFile, *keyFile)
	if err != nil {
		return err
	}
	var requested []string
	if *caps != "" {
		requested = strings.Split(*caps, ",")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	e, err := collab.Listen(ctx, collab.Config{Identity: id, Trust: trust, ListenAddr: ":0", CallTimeout: *timeout})
	if err != nil {
		return err
	}
	defer e.Close()
	s, err := e.Session(ctx, peer, requested)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "session %s with %s, granted %v\n", s.ID(), s.Peer(), s.Granted())
	var out any
	switch {
	case rest[0] == "tools/list" && len(rest) == 1:
		out, err = s.ListTools(ctx)
	case rest[0] == "tools/call" && (len(rest) == 2 || len(rest) == 3):
		var a json.RawMessage
		if len(rest) == 3 {
			a = json.RawMessage(rest[2])
			if !json.Valid(a) {
				return fmt.Errorf("%w: arguments are not valid JSON", errUsage)
			}
		}
		ev, _, cerr := s.CallTool(ctx, rest[1], a, collab.CallOptions{Progress: func(done, total float64, msg string) {
			fmt.Fprintf(env.stderr, "progress %g/%g %s\n", done, total, msg)
		}})
		out, err = ev, cerr
	case rest[0] == "resources/read" && len(rest) == 2:
		var ev signing.Evidence
		ev, _, err = s.ReadResource(ctx, rest[1])
		out = ev
	default:
		return fmt.Errorf("%w: method must be tools/list, tools/call NAME [ARGSJSON] or resources/read URI", errUsage)
	}
	if err != nil {
		if r := collab.UntrustedReason(err); r != "" {
			return fmt.Errorf("%w (peer untrusted: %s)", err, r)
		}
		return err
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// parsePeer parses NAME@HOST:PORT; HOST may be a name to resolve.
func parsePeer(s, thumb string) (collab.Peer, error) {
	name, hostport, ok := strings.Cut(s, "@")
	if !ok || name == "" {
		return collab.Peer{}, fmt.Errorf("--peer %q: want NAME@HOST:PORT", s)
	}
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", hostport)
		if rerr != nil {
			return collab.Peer{}, fmt.Errorf("--peer %q: %w", s, rerr)
		}
		ap = ua.AddrPort()
	}
	p := collab.Peer{Name: name, Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
	if thumb != "" {
		if err := p.Thumbprint.UnmarshalText([]byte(thumb)); err != nil {
			return collab.Peer{}, fmt.Errorf("--thumbprint: %w", err)
		}
	}
	return p, nil
}
