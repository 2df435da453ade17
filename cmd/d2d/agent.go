package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/d2dmesh/d2d/device"
	"github.com/d2dmesh/d2d/device/linux"
	"github.com/d2dmesh/d2d/node"
)

func init() {
	register(command{
		name:    "agent",
		summary: "run the collaboration agent of this device",
		run:     runAgent,
	})
}

func runAgent(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "agent")
	cfgPath := fs.String("config", "", "node.yaml (optional: every setting has a default)")
	name := fs.String("node", "", "node name (default: config, $D2D_NODE, containerlab's node name, host name)")
	listen := fs.String("listen", "", "D2D endpoint UDP address (default :9514)")
	stateDir := fs.String("state-dir", "", "state directory (default /var/lib/d2d)")
	mode := fs.String("discovery", "", "discovery mode: lldp, isis or off")
	controller := fs.String("controller", "", "controller to push reports to (name@host:port)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var cfg node.Config
	if *cfgPath != "" {
		var err error
		if cfg, err = node.LoadConfig(*cfgPath); err != nil {
			return err
		}
	}
	cfg.ApplyEnv(os.Getenv)
	for dst, v := range map[*string]string{&cfg.Node: *name, &cfg.Listen: *listen, &cfg.StateDir: *stateDir, &cfg.Discovery.Mode: *mode, &cfg.Controller: *controller} {
		if v != "" {
			*dst = v
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr(fmt.Sprintf("--log-level %q", *logLevel))
	}
	log := slog.New(slog.NewJSONHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	return node.RunAgent(ctx, cfg, node.RunOptions{Logger: log, Backend: func(c node.Config) (device.Backend, error) {
		if c.Backend.Kind != "linux" {
			return nil, fmt.Errorf("backend %q: this binary runs the linux backend; the simulator runs through `d2d demo` and `d2d lab`", c.Backend.Kind)
		}
		return linux.New(linux.Config{Node: c.Node, Names: c.Backend.Names, Logger: log})
	}, ShutdownTimeout: 10 * time.Second})
}
