// Package kernel finds out which optional features the running Linux
// kernel offers, by trying them once in a throwaway network namespace,
// and says which command lines need them.
//
// Kernels differ in what they were built with: a distribution kernel may
// leave out CONFIG_IPV6_SEG6_LWTUNNEL, without which every
// `ip -6 route add … encap seg6 …` and `… encap seg6local …` fails with
// "lwt encapsulation type not supported", while the core SRH processing
// of local addresses (net.ipv6.conf.*.seg6_enabled) still works. The lab
// runner and the privileged tests ask this package instead of assuming:
// an exec line that needs a missing feature is left out with a warning
// naming the kernel option, and a test that needs it skips, naming it.
//
// Probing needs CAP_SYS_ADMIN and CAP_NET_ADMIN (a namespace of its own);
// without them the answer is an error, never a guess.
package kernel

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
)

// Feature is an optional kernel feature.
type Feature string

// Features the project uses beyond a plain kernel.
const (
	// Seg6Encap is SRv6 encapsulation routes (ip route … encap seg6).
	Seg6Encap Feature = "seg6-encap"
	// Seg6Local is SRv6 local SID behaviours such as End and End.DT6
	// (ip route … encap seg6local).
	Seg6Local Feature = "seg6local"
)

// Features lists every feature Probe knows, in a stable order.
var Features = []Feature{Seg6Encap, Seg6Local}

// Option is the kernel build option that provides the feature.
func (f Feature) Option() string {
	switch f {
	case Seg6Encap, Seg6Local:
		return "CONFIG_IPV6_SEG6_LWTUNNEL"
	}
	return ""
}

// Describe says what the feature is, for warnings and skip messages.
func (f Feature) Describe() string {
	switch f {
	case Seg6Encap:
		return "SRv6 encapsulation routes (encap seg6)"
	case Seg6Local:
		return "SRv6 local SID routes (encap seg6local)"
	}
	return string(f)
}

// Missing is the message for a feature the kernel lacks, e.g.
// "kernel lacks SRv6 local SID routes (encap seg6local): built without CONFIG_IPV6_SEG6_LWTUNNEL".
func (f Feature) Missing() string {
	return fmt.Sprintf("kernel lacks %s: built without %s", f.Describe(), f.Option())
}

// probes are the routes that try each feature, on the probe namespace's
// loopback.
var probes = map[Feature][]string{
	Seg6Encap: {"-6", "route", "add", "fc00:d2d::/64", "encap", "seg6", "mode", "encap", "segs", "fc00:d2d:1::1", "dev", "lo"},
	Seg6Local: {"-6", "route", "add", "fc00:d2d:2::e/128", "encap", "seg6local", "action", "End", "dev", "lo"},
}

// unsupported is what iproute2 prints when the kernel has no handler for
// a lightweight-tunnel encapsulation type (EOPNOTSUPP from
// lwtunnel_valid_encap_type).
var unsupported = []string{"lwt encapsulation type not supported", "Operation not supported"}

var (
	once   sync.Once
	found  map[Feature]bool
	probeE error
)

// Has reports whether the running kernel offers f. The first call probes
// every feature in one throwaway namespace; later calls return the same
// answer.
func Has(f Feature) (bool, error) {
	once.Do(func() { found, probeE = probe() })
	if probeE != nil {
		return false, probeE
	}
	ok, known := found[f]
	if !known {
		return false, fmt.Errorf("kernel: unknown feature %q", f)
	}
	return ok, nil
}

func probe() (map[Feature]bool, error) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("kernel: probing features needs ip(8) from iproute2: %w", err)
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	ns := "d2dcap-" + hex.EncodeToString(r[:])
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("kernel: probing features needs a network namespace of its own: %v: %s", err, bytes.TrimSpace(out))
	}
	defer exec.Command(ip, "netns", "del", ns).Run()
	if out, err := exec.Command(ip, "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("kernel: probe namespace: %v: %s", err, bytes.TrimSpace(out))
	}
	m := map[Feature]bool{}
	for _, f := range Features {
		out, err := exec.Command(ip, append([]string{"-n", ns}, probes[f]...)...).CombinedOutput()
		switch {
		case err == nil:
			m[f] = true
		case refused(out):
			m[f] = false
		default:
			return nil, fmt.Errorf("kernel: probing %s: %v: %s", f, err, bytes.TrimSpace(out))
		}
	}
	return m, nil
}

func refused(out []byte) bool {
	for _, s := range unsupported {
		if bytes.Contains(out, []byte(s)) {
			return true
		}
	}
	return false
}

// Needs returns the feature a command line needs beyond a plain kernel,
// if any: an ip(8) route with "encap seg6" or "encap seg6local".
func Needs(argv []string) (Feature, bool) {
	if len(argv) == 0 || filepath.Base(argv[0]) != "ip" {
		return "", false
	}
	for i := 1; i+1 < len(argv); i++ {
		if argv[i] != "encap" {
			continue
		}
		switch argv[i+1] {
		case "seg6":
			return Seg6Encap, true
		case "seg6local":
			return Seg6Local, true
		}
	}
	return "", false
}

// Lacks reports whether argv needs a feature the kernel does not offer,
// and which. A failed probe lacks nothing: the command then runs and
// fails, if it must, with its own error.
func Lacks(argv []string) (Feature, bool) {
	f, ok := Needs(argv)
	if !ok {
		return "", false
	}
	has, err := Has(f)
	return f, err == nil && !has
}
