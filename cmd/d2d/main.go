// Command d2d is the device-to-device MCP collaboration agent and its tools.
// Each subcommand lives in its own file and registers itself in init; a
// subcommand only parses flags and calls into the packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. run gets the arguments after the subcommand
// name (and after the sub-subcommand for grouped commands).
type command struct {
	name    string // "pki init", "report verify", "demo"
	summary string
	run     func(ctx context.Context, env *cmdEnv, args []string) error
}

// cmdEnv is what a subcommand may touch besides its arguments, so tests can
// run subcommands in-process.
type cmdEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("d2d: duplicate command " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks an error as a usage problem (exit status 2).
var errUsage = errors.New("usage")

// exitError carries an explicit exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &cmdEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches args to a subcommand and returns the exit status.
func run(ctx context.Context, env *cmdEnv, args []string) int {
	c, rest, ok := lookup(args)
	if !ok {
		if len(args) > 0 && args[0] == "help" {
			args = append(args[1:], "--help")
		}
		group := ""
		if len(args) > 0 && isGroup(args[0]) {
			group = args[0]
		}
		if len(args) == 0 || isHelp(args[0]) || group != "" && (len(args) == 1 || isHelp(args[1])) {
			usage(env.stdout, group)
			return 0
		}
		usage(env.stderr, group)
		fmt.Fprintf(env.stderr, "d2d: unknown command %q\n", strings.Join(args, " "))
		return 2
	}
	err := c.run(ctx, env, rest)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(env.stderr, "d2d %s: %v\n", c.name, err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// lookup finds the longest registered command name that prefixes args.
func lookup(args []string) (command, []string, bool) {
	for n := min(len(args), 2); n > 0; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			return c, args[n:], true
		}
	}
	return command{}, nil, false
}

func isHelp(s string) bool { return s == "help" || s == "-h" || s == "-help" || s == "--help" }

// isGroup reports whether name is the first word of grouped commands
// ("lab" of "lab up", "lab down", …).
func isGroup(name string) bool {
	for n := range commands {
		if strings.HasPrefix(n, name+" ") {
			return true
		}
	}
	return false
}

// usage lists the commands, or only a group's when group is set; every
// command takes --help for its own flags.
func usage(w io.Writer, group string) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		if group == "" || strings.HasPrefix(n, group+" ") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if group == "" {
		fmt.Fprintln(w, "usage: d2d COMMAND [flags]")
	} else {
		fmt.Fprintf(w, "usage: d2d %s COMMAND [flags]\n", group)
	}
	fmt.Fprintln(w)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nd2d COMMAND --help shows a command's flags.")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(env *cmdEnv, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("d2d "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	return fs
}

// usageErr returns a usage error with a message.
func usageErr(msg string) error { return fmt.Errorf("%w: %s", errUsage, msg) }
