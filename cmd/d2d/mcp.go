package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/d2dmesh/d2d/node"
	"github.com/d2dmesh/d2d/simulate"
)

func init() {
	register(command{
		name:    "mcp",
		summary: "standard MCP server for LLM hosts (stdio or streamable HTTP)",
		run:     runMCP,
	})
}

// runMCP serves the LLM-host endpoint. Two modes:
//
//	d2d mcp [--state-dir DIR | --socket PATH]   attach to the local agent (admin socket)
//	d2d mcp --demo [--node PE-1] [--fault …]    an in-process simulated domain
//
// Transport: stdio by default; --http 127.0.0.1:PORT serves streamable
// HTTP at /mcp instead (loopback only unless --http-any).
func runMCP(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "mcp")
	stateDir := fs.String("state-dir", envOr("D2D_STATE_DIR", "/var/lib/d2d"), "agent state directory (attach mode)")
	socket := fs.String("socket", "", "agent admin socket (default STATE_DIR/admin.sock)")
	demo := fs.Bool("demo", false, "serve a node of an in-process simulated domain instead of the local agent")
	nodeName := fs.String("node", "PE-1", "with --demo: the node to serve")
	seed := fs.Int64("seed", 1, "with --demo: simulation seed")
	var faults stringList
	fs.Var(&faults, "fault", "with --demo: fault to inject, repeatable (default: "+simulate.HeadlineFault+"); \"none\" for none")
	httpAddr := fs.String("http", "", "serve streamable HTTP on this address (path /mcp) instead of stdio")
	httpAny := fs.Bool("http-any", false, "allow --http on a non-loopback address (the endpoint has no authentication of its own)")
	customer := fs.Bool("customer-data", false, "serve privacy level 3 data (MAC and interface addresses) unredacted")
	verbose := fs.Bool("v", false, "log to stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 0 {
		return usageErr("no arguments are taken")
	}
	if *httpAddr != "" && !*httpAny {
		ap, err := netip.ParseAddrPort(*httpAddr)
		if err != nil || !ap.Addr().IsLoopback() {
			return usageErr("--http must be a loopback address:port (LLM isolation, draft 003 §7.3); --http-any overrides")
		}
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(env.stderr, nil))
	}

	var src node.MCPSource
	if *demo {
		if len(faults) == 0 {
			faults = stringList{simulate.HeadlineFault}
		}
		d, err := simulate.StartDomain(ctx, simulate.DomainConfig{Seed: *seed, Discovery: "static", ProbeCount: 20, Logger: log})
		if err != nil {
			return err
		}
		defer d.Close()
		for _, f := range faults {
			if f == "none" {
				continue
			}
			flt, err := simulate.ParseFault(f)
			if err != nil {
				return usageErr(err.Error())
			}
			if _, err := d.Network.Inject(flt); err != nil {
				return err
			}
		}
		a := d.Agent(*nodeName)
		if a == nil {
			return usageErr(fmt.Sprintf("--node %q is not in the demo domain %v", *nodeName, d.Nodes()))
		}
		src = a.MCPSource()
	} else {
		if *socket == "" {
			*socket = filepath.Join(*stateDir, "admin.sock")
		}
		var err error
		if src, err = node.DialMCPSource(ctx, *socket); err != nil {
			return err
		}
	}
	defer src.Close()
	srv, err := node.NewMCPServer(ctx, src, node.MCPOptions{CustomerData: *customer, Logger: log})
	if err != nil {
		return err
	}
	if *httpAddr == "" {
		return node.ServeMCPStdio(ctx, srv, io.NopCloser(env.stdin), nopWriteCloser{env.stdout})
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", node.MCPHTTPHandler(srv, log))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(env.stderr, "d2d mcp: streamable HTTP on http://%s/mcp\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
