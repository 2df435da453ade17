package discovery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d2dmesh/d2d/discovery"
	"github.com/d2dmesh/d2d/internal/netns"
	"github.com/d2dmesh/d2d/internal/testenv"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestTshark: Wireshark dissects our frames without malformed packets or
// expert warnings and errors (the GENINFO TLV is only "not implemented",
// a note).
func TestTshark(t *testing.T) {
	tshark := testenv.LookPath(t, "tshark", "tshark")
	big := bigAdvertisement()
	l, i := testLLDP(), testISIS()
	lb, ib := testLLDP(), testISIS()
	lb.Adv, ib.LSP.Adv, ib.LSP.Level = &big, &big, 2
	var frames [][]byte
	for _, f := range []interface{ MarshalBinary() ([]byte, error) }{&l, &i, &lb, &ib} {
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
	}
	path := filepath.Join(t.TempDir(), "d2d.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, b := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, 0), CaptureLength: len(b), Length: len(b)}
		if err := w.WritePacket(ci, b); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out, err := exec.Command(tshark, "-r", path, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -V: %v\n%s", err, out)
	}
	for _, want := range []string{"Chassis Id: 02:00:00:00:00:01", "Port Id: eth1", "System Name: r1",
		"Checksum Status: Good", "L1 LSP", "L2 LSP", "Hostname: r1", "Unknown code (t=251"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("tshark -V lacks %q", want)
		}
	}
	if bytes.Contains(bytes.ToLower(out), []byte("malformed")) {
		t.Errorf("tshark reports a malformed packet:\n%s", out)
	}
	out, err = exec.Command(tshark, "-r", path, "-q", "-z", "expert").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark -z expert: %v\n%s", err, out)
	}
	for _, bad := range []string{"Errors (", "Warns ("} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("tshark expert info has %s:\n%s", bad, out)
		}
	}
	t.Logf("tshark expert:\n%s", out)
}

// TestLLDPD: lldpd in a neighbouring namespace lists us with our
// organisationally specific TLV, and we list it without D2D capability.
func TestLLDPD(t *testing.T) {
	testenv.RequirePrivileged(t)
	lldpd := testenv.LookPath(t, "lldpd", "lldpd")
	lldpcli := testenv.LookPath(t, "lldpcli", "lldpd")
	linkLeakCheck(t)
	var ns [2]*netns.NS
	for i := range ns {
		n, err := netns.New(fmt.Sprintf("d2dC-%d-lldpd-%d", os.Getpid(), i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		ns[i] = n
	}
	if err := netns.Veth(ns[0], "d2d0", ns[1], "sw0", 0); err != nil {
		t.Fatal(err)
	}
	// lldpd's unprivileged half must reach the socket: a world-searchable
	// directory, not the 0700 t.TempDir.
	dir, err := os.MkdirTemp("", "d2dC-lldpd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "lldpd.socket")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns[1].Name, lldpd, "-d", "-u", sock, "-I", "sw0", "-L", lldpcli, "-O", "/dev/null")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("lldpd:\n%s", logs.String())
		}
	})
	cli := func(args ...string) ([]byte, error) {
		return ns[1].Run(context.Background(), lldpcli, append([]string{"-u", sock}, args...)...)
	}
	waitUntil(t, 5*time.Second, "lldpd control socket", func() bool {
		_, err := cli("show", "configuration")
		return err == nil
	})
	if out, err := cli("configure", "lldp", "tx-interval", "1"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	agents := startAgents(t, [3]discovery.LinkNetwork{nsLinks{ns[0]}, discovery.NewMemLinkNetwork().Node("x"), discovery.NewMemLinkNetwork().Node("x")}, discovery.ModeLLDP)
	waitUntil(t, 5*time.Second, "we list lldpd", func() bool {
		for _, n := range agents[0].Neighbors() {
			if n.Interface == "d2d0" && !n.D2D && n.Port != "" {
				return true
			}
		}
		return false
	})
	var out []byte
	waitUntil(t, 5*time.Second, "lldpd lists n0", func() bool {
		var err error
		out, err = cli("-f", "json", "show", "neighbors", "details")
		return err == nil && bytes.Contains(out, []byte(`"n0"`))
	})
	var doc any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("lldpcli json: %v\n%s", err, out)
	}
	s := string(out)
	// lldpcli prints the OUI as "00,00,5E" and the subtype in decimal.
	if !strings.Contains(s, "00,00,5E") || !strings.Contains(s, `"210"`) {
		t.Errorf("lldpcli does not show our org TLV (OUI 00,00,5E subtype 210):\n%s", out)
	}
	if !strings.Contains(s, "d2d0") {
		t.Errorf("lldpcli does not show our port d2d0:\n%s", out)
	}
}
