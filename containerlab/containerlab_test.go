package containerlab_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/d2dmesh/d2d/containerlab"
	"github.com/d2dmesh/d2d/node"
)

// schema loads containerlab's schema from $D2D_CLAB_SCHEMA (.ci/run sets
// it); without it the test skips, naming the file it needs.
func schema(t *testing.T) *containerlab.Schema {
	t.Helper()
	p, err := containerlab.SchemaFromEnv()
	if errors.Is(err, containerlab.ErrNoSchema) {
		t.Skip("skipping: ", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := containerlab.LoadSchema(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func topologyFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.clab.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("topology files %v: want the SRv6 triangle and a larger one", files)
	}
	return files
}

// env gives the variables the files reference a value, as a deployment would.
func env(k string) string {
	if k == "D2D_DOMAIN_KEY" {
		return strings.Repeat("ab", 32)
	}
	return ""
}

func TestTopologyFilesValidate(t *testing.T) {
	s := schema(t)
	for _, f := range topologyFiles(t) {
		t.Run(f, func(t *testing.T) {
			if err := s.ValidateFile(f, env); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestTopologyFilesRunnable checks what a lab needs beyond the schema:
// linux nodes of the d2d image, every node's config bound in and valid,
// exec blocks, the names map covering every d2d node, and at least one
// topology of five or more nodes with two paths.
func TestTopologyFilesRunnable(t *testing.T) {
	large := false
	for _, f := range topologyFiles(t) {
		t.Run(f, func(t *testing.T) {
			topo, err := containerlab.Load(f, env)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(topo.Topology.Nodes); n >= 5 && len(topo.Topology.Links) >= n {
				large = true // a ring or more: at least two paths
			}
			names := map[string]bool{}
			var cfgs []node.Config
			for _, name := range topo.NodeNames() {
				n, err := topo.Node(name)
				if err != nil {
					t.Fatal(err)
				}
				if n.Kind != "linux" || n.Image != "d2d:latest" || !strings.Contains(n.Cmd, "d2d agent") {
					t.Errorf("%s: kind %q image %q cmd %q", name, n.Kind, n.Image, n.Cmd)
				}
				if len(n.Exec) == 0 {
					t.Errorf("%s: no exec commands", name)
				}
				if strings.ToLower(name) != name {
					t.Errorf("%s: containerlab node names are lower case", name)
				}
				host, ok := n.HostPath("/etc/d2d/node.yaml")
				if !ok {
					t.Fatalf("%s: no node.yaml bound to /etc/d2d/node.yaml (binds %v)", name, n.Binds)
				}
				cfg, err := node.LoadConfig(host)
				if err != nil {
					t.Fatal(err)
				}
				cfg.ApplyEnv(func(k string) string { return n.Env[k] })
				if cfg.Node == "" {
					cfg.Node = name
				}
				names[cfg.Node] = true
				if cfg.Discovery.DomainKey != strings.Repeat("ab", 32) {
					t.Errorf("%s: domain key %q does not come from D2D_DOMAIN_KEY", name, cfg.Discovery.DomainKey)
				}
				cfgs = append(cfgs, cfg)
			}
			for _, c := range cfgs {
				for n := range names {
					if c.Backend.Names[n] == "" {
						t.Errorf("%s: backend.names has no address for %s", c.Node, n)
					}
				}
			}
		})
	}
	if !large {
		t.Error("no topology of five or more nodes with two paths")
	}
}

func TestCheck(t *testing.T) {
	const head = "name: x\ntopology:\n  nodes:\n    a: {kind: linux}\n    b: {kind: linux}\n  links:\n"
	tests := []struct {
		name, links string
		want        []string // substrings of the error; none means valid
	}{
		{name: "brief", links: `    - endpoints: ["a:eth1", "b:eth1"]`},
		{name: "extended", links: "    - type: veth\n      endpoints: [{node: a, interface: eth1}, {node: b, interface: e1-1}]"},
		{name: "no colon", links: `    - endpoints: ["a-eth1", "b:eth1"]`, want: []string{`endpoint "a-eth1" is not "node:interface"`}},
		{name: "empty interface", links: `    - endpoints: ["a:", "b:eth1"]`, want: []string{`endpoint "a" is not`}},
		{name: "unknown node", links: `    - endpoints: ["a:eth1", "c:eth1"]`, want: []string{`node "c" is not defined`}},
		{name: "duplicate interface", links: "    - endpoints: [\"a:eth1\", \"b:eth1\"]\n    - endpoints: [\"a:eth1\", \"b:eth2\"]", want: []string{"interface a:eth1 is already used by the link on line 7"}},
		{name: "self", links: `    - endpoints: ["a:eth1", "a:eth1"]`, want: []string{"already used", "both ends are a:eth1"}},
		{name: "three ends", links: `    - endpoints: ["a:eth1", "b:eth1", "b:eth2"]`, want: []string{"3 endpoints, want 2"}},
		{name: "long name", links: `    - endpoints: ["a:ethernet-1-1-1-1", "b:eth1"]`, want: []string{"interface name"}},
		{name: "other type", links: "    - type: host\n      endpoint: {node: a, interface: eth1}\n      host-interface: x", want: []string{`type "host"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := containerlab.Parse([]byte(head + tt.links + "\n"))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, containerlab.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestSchemaRejects(t *testing.T) {
	s := schema(t)
	tests := []struct{ name, doc string }{
		{"no topology", "name: x\n"},
		{"unknown node key", "name: x\ntopology:\n  nodes:\n    a: {kind: linux, colour: red}\n"},
		{"bad kind", "name: x\ntopology:\n  nodes:\n    a: {kind: toaster}\n"},
		{"exec not a list", "name: x\ntopology:\n  nodes:\n    a: {kind: linux, exec: ip link}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Validate([]byte(tt.doc)); !errors.Is(err, containerlab.ErrInvalid) {
				t.Errorf("Validate = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "EMPTY": ""}
	get := func(k string) string { return vars[k] }
	tests := []struct{ in, want string }{
		{"x ${A} y", "x 1 y"},
		{"${B}", ""},
		{"${B:=d2d:latest}", "d2d:latest"},
		{"${EMPTY:-def}", "def"},
		{"${A:=def}", "1"},
		{"$A and $(cmd) stay", "$A and $(cmd) stay"},
	}
	for _, tt := range tests {
		if got := string(containerlab.Expand([]byte(tt.in), get)); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNodeResolution(t *testing.T) {
	dir := t.TempDir()
	doc := `name: lab1
topology:
  defaults:
    kind: linux
    image: base
    env: {A: "1", B: 2}
    binds: [common:/etc/common, a.yaml:/etc/d2d/node.yaml]
    exec: [echo defaults]
  kinds:
    linux:
      image: d2d:1
      env: {B: kind}
  groups:
    core:
      env: {C: group}
      exec: [echo group]
  nodes:
    n1:
      group: core
      env: {A: node}
      binds: [n1.yaml:/etc/d2d/node.yaml:ro]
    n2:
  links:
    - endpoints: ["n1:eth2", "n2:eth1"]
    - endpoints: ["n1:eth1", "n2:eth2"]
`
	path := filepath.Join(dir, "lab1.clab.yml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := containerlab.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := topo.Node("n1")
	if err != nil {
		t.Fatal(err)
	}
	want := containerlab.Node{
		Name: "n1", Kind: "linux", Image: "d2d:1", Group: "core",
		Env:        map[string]string{"A": "node", "B": "kind", "C": "group"},
		Labels:     map[string]string{},
		Binds:      []string{filepath.Join(dir, "common") + ":/etc/common", filepath.Join(dir, "n1.yaml") + ":/etc/d2d/node.yaml:ro"},
		Exec:       []string{"echo group"},
		Interfaces: []string{"eth1", "eth2"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("n1 (-want +got):\n%s", d)
	}
	if p, ok := got.HostPath("/etc/d2d/node.yaml"); !ok || p != filepath.Join(dir, "n1.yaml") {
		t.Errorf("HostPath = %q, %v", p, ok)
	}
	if p, ok := got.HostPath("/etc/common/x/y"); !ok || p != filepath.Join(dir, "common", "x", "y") {
		t.Errorf("HostPath under a bound directory = %q, %v", p, ok)
	}
	n2, _ := topo.Node("n2")
	if !slices.Equal(n2.Exec, []string{"echo defaults"}) || n2.Env["B"] != "kind" {
		t.Errorf("n2 = %+v", n2)
	}
	if got := topo.ContainerName("n1"); got != "clab-lab1-n1" {
		t.Errorf("ContainerName = %q", got)
	}
	if ep, ok := topo.Peer("n1", "eth2"); !ok || ep != (containerlab.Endpoint{Node: "n2", Interface: "eth1"}) {
		t.Errorf("Peer = %v, %v", ep, ok)
	}
	if l, ok := topo.LinkBetween("n2", "n1"); !ok || l.Endpoints[0] != (containerlab.Endpoint{Node: "n2", Interface: "eth1"}) {
		t.Errorf("LinkBetween = %+v, %v", l, ok)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"srv6-triangle.clab.yml", "metro5.clab.yml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: x\ntopology:\n  nodes: {a: {}}\n  links: [{endpoints: [a, 'a:']}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		topo, err := containerlab.Parse(b)
		if err != nil {
			return
		}
		for _, n := range topo.NodeNames() {
			if _, err := topo.Node(n); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func BenchmarkLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := containerlab.Load("metro5.clab.yml", env); err != nil {
			b.Fatal(err)
		}
	}
}
