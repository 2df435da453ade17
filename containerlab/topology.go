package containerlab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultMTU is containerlab's MTU for veth links that do not set one:
// 9500 bytes, so that jumbo frames and SRv6 encapsulation never need
// fragmenting inside a lab.
const DefaultMTU = 9500

// ErrInvalid is wrapped by every error about a topology's content.
var ErrInvalid = errors.New("containerlab: invalid topology")

// Topology is a decoded topology file.
type Topology struct {
	// Name is the lab name; containers are named clab-<Name>-<node>.
	Name string `yaml:"name"`
	// Prefix is containerlab's container name prefix ("clab" when unset).
	Prefix   *string `yaml:"prefix"`
	Mgmt     Mgmt    `yaml:"mgmt"`
	Topology Spec    `yaml:"topology"`
	// Dir is the directory of the file, against which relative bind
	// paths resolve. Set by Load; empty after Parse.
	Dir string `yaml:"-"`
}

// Default management subnets: containerlab's own, used when the file's
// mgmt section sets none.
const (
	DefaultMgmtIPv4 = "172.20.20.0/24"
	DefaultMgmtIPv6 = "3fff:172:20:20::/64"
)

// Mgmt is the management network section.
type Mgmt struct {
	Network    string `yaml:"network"`
	IPv4Subnet string `yaml:"ipv4-subnet"`
	IPv6Subnet string `yaml:"ipv6-subnet"`
}

// Spec is the topology section.
type Spec struct {
	Defaults NodeConfig             `yaml:"defaults"`
	Kinds    map[string]NodeConfig  `yaml:"kinds"`
	Groups   map[string]NodeConfig  `yaml:"groups"`
	Nodes    map[string]*NodeConfig `yaml:"nodes"`
	Links    []Link                 `yaml:"links"`
}

// NodeConfig is the part of a node's (or a default's, kind's or group's)
// settings a lab runner needs.
type NodeConfig struct {
	Kind       string            `yaml:"kind"`
	Image      string            `yaml:"image"`
	Group      string            `yaml:"group"`
	Cmd        string            `yaml:"cmd"`
	Entrypoint string            `yaml:"entrypoint"`
	Env        map[string]Scalar `yaml:"env"`
	Binds      []string          `yaml:"binds"`
	Exec       []string          `yaml:"exec"`
	Labels     map[string]Scalar `yaml:"labels"`
}

// Scalar is an env or label value: containerlab accepts strings, numbers
// and booleans and passes them on as text.
type Scalar string

// UnmarshalYAML takes any scalar as its text.
func (s *Scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a string, number or boolean", n.Line)
	}
	*s = Scalar(n.Value)
	return nil
}

// Link is a point-to-point link between two node interfaces.
type Link struct {
	// Type is "veth" for both the brief and the extended veth form.
	Type      string
	Endpoints []Endpoint
	// MTU is the link's MTU; zero means DefaultMTU.
	MTU int
	// Line is the link's line in the file, for messages.
	Line int
}

// Endpoint is one end of a link.
type Endpoint struct {
	Node      string
	Interface string
}

func (e Endpoint) String() string { return e.Node + ":" + e.Interface }

// UnmarshalYAML reads both link forms. An endpoint string that is not
// "node:interface" is kept with an empty Interface and reported by Check.
func (l *Link) UnmarshalYAML(n *yaml.Node) error {
	var raw struct {
		Type      string      `yaml:"type"`
		Endpoints []yaml.Node `yaml:"endpoints"`
		MTU       int         `yaml:"mtu"`
	}
	if err := n.Decode(&raw); err != nil {
		return err
	}
	l.Line, l.MTU, l.Type = n.Line, raw.MTU, raw.Type
	if l.Type == "" {
		l.Type = "veth"
	}
	for _, e := range raw.Endpoints {
		switch e.Kind {
		case yaml.ScalarNode:
			node, iface, ok := strings.Cut(e.Value, ":")
			if !ok {
				node, iface = e.Value, ""
			}
			l.Endpoints = append(l.Endpoints, Endpoint{Node: node, Interface: iface})
		case yaml.MappingNode:
			var ep struct {
				Node      string `yaml:"node"`
				Interface string `yaml:"interface"`
			}
			if err := e.Decode(&ep); err != nil {
				return err
			}
			l.Endpoints = append(l.Endpoints, Endpoint{Node: ep.Node, Interface: ep.Interface})
		default:
			return fmt.Errorf("line %d: a link endpoint is a string or a mapping", e.Line)
		}
	}
	return nil
}

// Load reads a topology file, expands ${VAR} references with getenv
// (os.Getenv if nil), decodes it and checks it.
func Load(path string, getenv func(string) string) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("containerlab: %w", err)
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	t, err := Parse(Expand(b, getenv))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("containerlab: %w", err)
	}
	t.Dir = filepath.Dir(abs)
	return t, nil
}

// Parse decodes an already expanded topology and checks it.
func Parse(b []byte) (*Topology, error) {
	var t Topology
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty file", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return &t, nil
}

// varRef matches ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:=default} and ${NAME=default}. A bare $NAME is left alone, so
// shell text in exec commands passes through untouched.
var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=])([^}]*))?\}`)

// Expand replaces ${VAR} references as containerlab does before it
// parses a topology: the value of VAR, or with a ":-"/":=" default the
// default when VAR is unset or empty ("-"/"=": only when unset, which
// getenv cannot tell apart from empty, so both act alike here).
func Expand(b []byte, getenv func(string) string) []byte {
	return varRef.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := varRef.FindSubmatch(m)
		v := getenv(string(sub[1]))
		if v == "" && len(sub[2]) > 0 {
			v = string(sub[3])
		}
		return []byte(v)
	})
}

// ifaceName is what the kernel accepts as an interface name: 1 to 15
// bytes (IFNAMSIZ less the terminator), no '/', ':' or white space.
var ifaceName = regexp.MustCompile(`^[^/:\s]{1,15}$`)

// nodeName is the schema's pattern for node names.
var nodeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-._|]*$`)

// Check reports every problem the schema does not catch, joined into one
// error wrapping ErrInvalid.
func (t *Topology) Check() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...))
	}
	if t.Name == "" {
		bad("no lab name")
	} else if !nodeName.MatchString(t.Name) {
		bad("lab name %q: letters, digits, '-', '_', '.' only", t.Name)
	}
	if len(t.Topology.Nodes) == 0 {
		bad("no nodes")
	}
	for _, n := range t.NodeNames() {
		if !nodeName.MatchString(n) {
			bad("node name %q", n)
		}
		if g := t.Topology.Nodes[n]; g != nil && g.Group != "" {
			if _, ok := t.Topology.Groups[g.Group]; !ok {
				bad("node %s: group %q is not defined", n, g.Group)
			}
		}
	}
	used := map[Endpoint]int{} // endpoint → line of its first link
	for i, l := range t.Topology.Links {
		where := fmt.Sprintf("link %d (line %d)", i+1, l.Line)
		if l.Type != "veth" {
			bad("%s: type %q: only veth links are supported", where, l.Type)
			continue
		}
		if len(l.Endpoints) != 2 {
			bad("%s: %d endpoints, want 2", where, len(l.Endpoints))
		}
		if l.MTU < 0 || l.MTU > 65535 {
			bad("%s: mtu %d out of range", where, l.MTU)
		}
		for _, e := range l.Endpoints {
			if e.Node == "" || e.Interface == "" {
				bad("%s: endpoint %q is not \"node:interface\"", where, strings.TrimSuffix(e.String(), ":"))
				continue
			}
			if _, ok := t.Topology.Nodes[e.Node]; !ok {
				bad("%s: endpoint %s: node %q is not defined", where, e, e.Node)
			}
			if !ifaceName.MatchString(e.Interface) {
				bad("%s: endpoint %s: interface name %q (1 to 15 characters, no '/', ':' or spaces)", where, e, e.Interface)
			}
			if first, dup := used[e]; dup {
				bad("%s: interface %s is already used by the link on line %d", where, e, first)
				continue
			}
			used[e] = l.Line
		}
		if len(l.Endpoints) == 2 && l.Endpoints[0] == l.Endpoints[1] && l.Endpoints[0].Interface != "" {
			bad("%s: both ends are %s", where, l.Endpoints[0])
		}
	}
	return errors.Join(errs...)
}

// NodeNames returns the node names, sorted.
func (t *Topology) NodeNames() []string {
	out := make([]string, 0, len(t.Topology.Nodes))
	for n := range t.Topology.Nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ContainerName is containerlab's name for a node's container:
// <prefix>-<lab>-<node>, prefix "clab" unless the file sets one; an
// empty prefix gives the bare node name.
func (t *Topology) ContainerName(node string) string {
	p := "clab"
	if t.Prefix != nil {
		p = *t.Prefix
	}
	switch p {
	case "":
		return node
	case "__lab-name":
		return t.Name + "-" + node
	}
	return p + "-" + t.Name + "-" + node
}

// Node is one node's resolved settings.
type Node struct {
	Name       string
	Kind       string
	Image      string
	Group      string
	Cmd        string
	Entrypoint string
	Env        map[string]string
	Labels     map[string]string
	// Binds are "host:container[:options]", host paths made absolute
	// against the topology's directory.
	Binds []string
	Exec  []string
	// Interfaces are the node's link interfaces, sorted.
	Interfaces []string
}

// Node resolves a node's settings: node, group, kind and defaults, in
// that order of precedence.
func (t *Topology) Node(name string) (Node, error) {
	nc, ok := t.Topology.Nodes[name]
	if !ok {
		return Node{}, fmt.Errorf("%w: no node %q", ErrInvalid, name)
	}
	if nc == nil {
		nc = &NodeConfig{}
	}
	kind := first(nc.Kind, t.Topology.Groups[nc.Group].Kind, t.Topology.Defaults.Kind)
	layers := []NodeConfig{t.Topology.Defaults, t.Topology.Kinds[kind], t.Topology.Groups[nc.Group], *nc} // lowest first
	n := Node{Name: name, Kind: kind, Group: nc.Group, Env: map[string]string{}, Labels: map[string]string{}}
	for _, l := range layers {
		n.Image = first(l.Image, n.Image)
		n.Cmd = first(l.Cmd, n.Cmd)
		n.Entrypoint = first(l.Entrypoint, n.Entrypoint)
		if len(l.Exec) > 0 {
			n.Exec = slices.Clone(l.Exec)
		}
		for k, v := range l.Env {
			n.Env[k] = string(v)
		}
		for k, v := range l.Labels {
			n.Labels[k] = string(v)
		}
		for _, b := range l.Binds {
			n.Binds = addBind(n.Binds, t.absBind(b))
		}
	}
	for _, l := range t.Topology.Links {
		for _, e := range l.Endpoints {
			if e.Node == name && e.Interface != "" {
				n.Interfaces = append(n.Interfaces, e.Interface)
			}
		}
	}
	sort.Strings(n.Interfaces)
	return n, nil
}

// HostPath maps a path inside the node's container to the host file bound
// there, if a bind covers it.
func (n Node) HostPath(inside string) (string, bool) {
	inside = filepath.Clean(inside)
	best, bestLen := "", -1
	for _, b := range n.Binds {
		parts := strings.Split(b, ":")
		if len(parts) < 2 {
			continue
		}
		host, ctr := parts[0], filepath.Clean(parts[1])
		switch {
		case inside == ctr:
			return host, true
		case strings.HasPrefix(inside, ctr+"/") && len(ctr) > bestLen:
			best, bestLen = filepath.Join(host, strings.TrimPrefix(inside, ctr+"/")), len(ctr)
		}
	}
	return best, bestLen >= 0
}

func (t *Topology) absBind(b string) string {
	host, rest, ok := strings.Cut(b, ":")
	if !ok || filepath.IsAbs(host) || t.Dir == "" {
		return b
	}
	// containerlab resolves relative bind paths against the topology
	// file's directory.
	return filepath.Join(t.Dir, host) + ":" + rest
}

// addBind appends b, replacing a bind to the same container path.
func addBind(binds []string, b string) []string {
	target := func(s string) string {
		parts := strings.Split(s, ":")
		if len(parts) < 2 {
			return s
		}
		return filepath.Clean(parts[1])
	}
	return append(slices.DeleteFunc(binds, func(o string) bool { return target(o) == target(b) }), b)
}

func first(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// Peer returns the node and interface at the other end of node's link
// through iface.
func (t *Topology) Peer(node, iface string) (Endpoint, bool) {
	for _, l := range t.Topology.Links {
		if len(l.Endpoints) != 2 {
			continue
		}
		for i, e := range l.Endpoints {
			if e.Node == node && e.Interface == iface {
				return l.Endpoints[1-i], true
			}
		}
	}
	return Endpoint{}, false
}

// LinkBetween returns the link joining nodes a and b, oriented so that
// Endpoints[0] is on a. With parallel links the first in the file wins.
func (t *Topology) LinkBetween(a, b string) (Link, bool) {
	for _, l := range t.Topology.Links {
		if len(l.Endpoints) != 2 {
			continue
		}
		switch {
		case l.Endpoints[0].Node == a && l.Endpoints[1].Node == b:
			return l, true
		case l.Endpoints[1].Node == a && l.Endpoints[0].Node == b:
			l.Endpoints = []Endpoint{l.Endpoints[1], l.Endpoints[0]}
			return l, true
		}
	}
	return Link{}, false
}
