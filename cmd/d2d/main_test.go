package main

import (
	"strings"
	"testing"
)

// TestHelp asks every command group for help in each way an engineer
// types it: each lists exactly its group's commands and exits 0, and an
// unknown subcommand of a group is a usage error.
func TestHelp(t *testing.T) {
	groups := map[string]bool{}
	for n := range commands {
		if g, _, ok := strings.Cut(n, " "); ok {
			groups[g] = true
		}
	}
	if len(groups) < 5 {
		t.Fatalf("command groups %v: want lab, pki, report, discovery, controller and more", groups)
	}
	for g := range groups {
		for _, args := range [][]string{{g}, {g, "--help"}, {g, "-h"}, {"help", g}} {
			code, out, errs := runD2D(t, args...)
			if code != 0 || errs != "" {
				t.Errorf("d2d %s: exit %d, stderr %q", strings.Join(args, " "), code, errs)
			}
			for n, c := range commands {
				listed := strings.Contains(out, "\n  "+n+" ")
				if mine := strings.HasPrefix(n, g+" "); listed != mine {
					t.Errorf("d2d %s: %q listed=%v (%s)", strings.Join(args, " "), n, listed, c.summary)
				}
			}
		}
		code, _, errs := runD2D(t, g, "no-such-command")
		if code != 2 || !strings.Contains(errs, "unknown command") || !strings.Contains(errs, "usage: d2d "+g+" COMMAND") {
			t.Errorf("d2d %s no-such-command: exit %d\n%s", g, code, errs)
		}
	}
	if code, out, _ := runD2D(t, "--help"); code != 0 || !strings.Contains(out, "  lab up ") || !strings.Contains(out, "  demo ") {
		t.Errorf("d2d --help: exit %d\n%s", code, out)
	}
}
