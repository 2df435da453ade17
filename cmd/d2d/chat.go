package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/d2dmesh/d2d/node"
)

func init() {
	register(command{
		name:    "chat",
		summary: "operator shell attached to the local agent",
		run:     runChat,
	})
}

func runChat(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "chat")
	stateDir := fs.String("state-dir", envOr("D2D_STATE_DIR", "/var/lib/d2d"), "agent state directory")
	socket := fs.String("socket", "", "admin socket (default STATE_DIR/admin.sock)")
	command := fs.String("c", "", "run one intent and exit")
	asJSON := fs.Bool("json", false, "print events and results as JSON lines")
	consent := fs.String("consent", "", "mitigation prompts: ask (default on a terminal), approve or deny (default otherwise)")
	confirm := fs.Bool("confirm", false, "with --consent approve, also keep the applied change")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *socket == "" {
		*socket = filepath.Join(*stateDir, "admin.sock")
	}
	switch *consent {
	case "", "ask", "approve", "deny":
	default:
		return usageErr("--consent must be ask, approve or deny")
	}
	return node.Chat(ctx, node.ChatOptions{
		Socket:      *socket,
		Command:     *command,
		JSON:        *asJSON,
		Consent:     *consent,
		Confirm:     *confirm,
		HistoryFile: filepath.Join(*stateDir, "chat_history"),
		In:          env.stdin,
		Out:         env.stdout,
	})
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
