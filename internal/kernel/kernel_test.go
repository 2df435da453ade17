package kernel_test

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/d2dmesh/d2d/internal/kernel"
	"github.com/d2dmesh/d2d/internal/testenv"
)

func TestNeeds(t *testing.T) {
	for _, tt := range []struct {
		name string
		line string
		want kernel.Feature
	}{
		{"seg6local End", "ip -6 route add fc00:0:1::e/128 encap seg6local action End dev eth1", kernel.Seg6Local},
		{"seg6local abbreviated", "/sbin/ip -6 r a fc00::d6/128 encap seg6local action End.DT6 table local dev eth1", kernel.Seg6Local},
		{"seg6 encap", "ip -6 route add fc00:0:9::/48 encap seg6 mode encap segs fc00:0:2::1 dev eth1", kernel.Seg6Encap},
		{"plain route", "ip -6 route add fc00:0:2::/48 via 2001:db8:0:1::2", ""},
		{"seg6_enabled sysctl", "sysctl -qw net.ipv6.conf.all.seg6_enabled=1", ""},
		{"encap as last word", "ip route add 10.0.0.0/8 encap", ""},
		{"not ip", "echo encap seg6local", ""},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := kernel.Needs(strings.Fields(tt.line))
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("Needs(%q) = %q, %v; want %q", tt.line, got, ok, tt.want)
			}
		})
	}
}

// TestProbeAgreesWithKernel checks each probed answer against a route of
// another shape in a namespace of the test's own: a feature reported
// present must accept it, one reported missing must refuse it.
func TestProbeAgreesWithKernel(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.LookPath(t, "ip", "iproute2")
	var r [3]byte
	_, _ = rand.Read(r[:])
	ns := "d2dkt-" + hex.EncodeToString(r[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, c := range []string{"link add d0 type veth peer name d1", "link set d0 up", "link set d1 up", "-6 addr add 2001:db8:ff::1/64 dev d0 nodad"} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, strings.Fields(c)...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", c, err, out)
		}
	}
	try := map[kernel.Feature]string{
		kernel.Seg6Encap: "-6 route add fc00:77::/64 encap seg6 mode inline segs fc00:77:1::1,fc00:77:2::1 dev d0",
		kernel.Seg6Local: "-6 route add fc00:77:3::d6/128 encap seg6local action End.DT6 table main dev d0",
	}
	for _, f := range kernel.Features {
		has, err := kernel.Has(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ip", append([]string{"-n", ns}, strings.Fields(try[f])...)...).CombinedOutput()
		if has && err != nil {
			t.Errorf("%s reported present, but ip %s: %v: %s", f, try[f], err, out)
		}
		if !has && err == nil {
			t.Errorf("%s reported missing (%s), but ip %s succeeded", f, f.Option(), try[f])
		}
		t.Logf("%s: present=%v (%s)", f, has, f.Option())
	}
	if _, err := kernel.Has("no-such-feature"); err == nil {
		t.Error("Has of an unknown feature: no error")
	}
}
