// Package netns creates named Linux network namespaces and veth pairs and
// runs code or commands inside them. It serves the lab runner and the
// privileged tests; everything it does needs CAP_SYS_ADMIN and CAP_NET_ADMIN.
//
// Sockets keep the namespace they were created in, so the idiom is: open a
// socket inside Do, then use it from any goroutine.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	vnetns "github.com/vishvananda/netns"
)

// NS is a named network namespace (visible to `ip netns`).
type NS struct {
	Name string

	once sync.Once
	h    vnetns.NsHandle
}

// New creates the named namespace with its loopback up. It fails if the
// name exists.
func New(name string) (*NS, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netns: add %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	h, err := vnetns.GetFromName(name)
	if err != nil {
		_ = exec.Command("ip", "netns", "del", name).Run()
		return nil, fmt.Errorf("netns: open %s: %w", name, err)
	}
	n := &NS{Name: name, h: h}
	if _, err := n.Run(context.Background(), "ip", "link", "set", "lo", "up"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Open returns an existing named namespace.
func Open(name string) (*NS, error) {
	h, err := vnetns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("netns: open %s: %w", name, err)
	}
	return &NS{Name: name, h: h}, nil
}

// Do runs fn on a locked OS thread switched into the namespace. Goroutines
// that fn starts do not inherit the namespace.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked (and so discarded when this goroutine
		// exits) if switching back fails, so no goroutine ever runs in the
		// wrong namespace.
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			errc <- fmt.Errorf("netns: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := vnetns.Set(n.h); err != nil {
			errc <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("netns: leave %s: %w", n.Name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Run runs a command inside the namespace (ip netns exec) and returns its
// combined output.
func (n *NS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns %s: %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Script runs a sequence of commands inside the namespace, stopping at the
// first failure; each command is one string split on spaces.
func (n *NS) Script(ctx context.Context, lines ...string) error {
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if _, err := n.Run(ctx, f[0], f[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// Close deletes the namespace. Calling it twice is safe.
func (n *NS) Close() error {
	var err error
	n.once.Do(func() {
		n.h.Close()
		if out, e := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); e != nil {
			err = fmt.Errorf("netns: del %s: %v: %s", n.Name, e, bytes.TrimSpace(out))
		}
	})
	return err
}

// Veth creates a veth pair with one end (aIf) in a and the other (bIf) in
// b, both up, with the given MTU (0 keeps the kernel default).
func Veth(a *NS, aIf string, b *NS, bIf string, mtu int) error {
	tmpA, tmpB := "v"+randSuffix(), "v"+randSuffix()
	steps := [][]string{
		{"link", "add", tmpA, "type", "veth", "peer", "name", tmpB},
		{"link", "set", tmpA, "netns", a.Name, "name", aIf},
		{"link", "set", tmpB, "netns", b.Name, "name", bIf},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "link", "del", tmpA).Run()
			return fmt.Errorf("netns: ip %s: %v: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
		}
	}
	ctx := context.Background()
	for _, e := range []struct {
		ns  *NS
		if_ string
	}{{a, aIf}, {b, bIf}} {
		if mtu > 0 {
			if _, err := e.ns.Run(ctx, "ip", "link", "set", e.if_, "mtu", fmt.Sprint(mtu)); err != nil {
				return err
			}
		}
		if _, err := e.ns.Run(ctx, "ip", "link", "set", e.if_, "up"); err != nil {
			return err
		}
	}
	return nil
}
