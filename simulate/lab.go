package simulate

// The network-namespace lab runner (docs/ARCHITECTURE.md §5): a containerlab topology
// file instantiated on one Linux host without Docker. Each node is a
// network namespace named as containerlab names its container
// (clab-<lab>-<node>), each link a veth pair with containerlab's interface
// names and MTU, the nodes' exec commands run inside the namespaces, and
// each node runs a real `d2d agent` process (the running binary again,
// through `ip netns exec`) with the Linux backend, LLDP discovery on the
// lab links, a certificate from the lab's own CA and its state under the
// lab directory. As containerlab does, it also gives every node an eth0 on
// a management network, here a bridge in a namespace of its own, from
// which controllers reach the nodes without being one.
//
// Everything the runner creates is found again by name, so Down also
// cleans up after a crash of `d2d lab up` itself: namespaces with the
// lab's prefix (their veths and nftables go with them), agent processes
// through their pid files (checked against /proc so that a recycled pid is
// never signalled), and the lab directory.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/d2dmesh/d2d/containerlab"
	"github.com/d2dmesh/d2d/internal/kernel"
	"github.com/d2dmesh/d2d/internal/netns"
	agent "github.com/d2dmesh/d2d/node"
	"github.com/d2dmesh/d2d/signing"
)

// ErrLab is wrapped by the lab runner's errors about the lab's state (a
// lab that exists already, a node that does not).
var ErrLab = errors.New("simulate: lab")

// DefaultLabDir is where labs keep their state unless told otherwise:
// under /run, so nothing survives a reboot, as namespaces do not.
const DefaultLabDir = "/run/d2d/lab"

// LabConfig configures the lab runner. The zero value needs only Topology.
type LabConfig struct {
	// Topology is the containerlab topology file.
	Topology string
	// Name overrides the lab name of the file (tests use it to keep
	// their namespaces apart).
	Name string
	// Dir is the parent of lab directories. If empty, DefaultLabDir.
	Dir string
	// Binary is the d2d executable the agents run. If empty, the running
	// executable (os.Executable).
	Binary string
	// Getenv expands ${VAR} in the topology and fills the agents'
	// environment. If nil, os.Getenv. An unset D2D_DOMAIN_KEY gets a
	// fresh random key.
	Getenv func(string) string
	// StartTimeout bounds the wait for the agents' admin sockets. If
	// zero, 30s.
	StartTimeout time.Duration
	// Schema is containerlab's JSON schema, to validate the topology
	// against before anything is created. If empty, $D2D_CLAB_SCHEMA;
	// when that is unset too, only the checks of
	// containerlab.Topology.Check run.
	Schema string
	// LogLevel is the agents' --log-level. If empty, "debug": the logs
	// stay in the lab directory, where they help most.
	LogLevel string
	Logger   *slog.Logger
}

func (c *LabConfig) populate() error {
	if c.Topology == "" {
		return fmt.Errorf("%w: no topology file", ErrLab)
	}
	if c.Dir == "" {
		c.Dir = DefaultLabDir
	}
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%w: own executable: %v", ErrLab, err)
		}
		c.Binary = exe
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.LogLevel == "" {
		c.LogLevel = "debug"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Lab is a topology instantiated in network namespaces.
type Lab struct {
	cfg   LabConfig
	topo  *containerlab.Topology
	dir   string
	state labState
	log   *slog.Logger
}

// labState is kept in <lab dir>/lab.json.
type labState struct {
	Name     string              `json:"name"`
	Topology string              `json:"topology"`
	Binary   string              `json:"binary"`
	Nodes    map[string]*LabNode `json:"nodes"`
	Faults   []LabFault          `json:"faults,omitempty"`
	// Mgmt is the management namespace, MgmtIPv4/6 its addresses on the
	// management bridge.
	Mgmt     string `json:"mgmt"`
	MgmtIPv4 string `json:"mgmtIPv4"`
	MgmtIPv6 string `json:"mgmtIPv6"`
	// Omitted lists the exec lines left out for a kernel feature this
	// host lacks.
	Omitted []OmittedExec `json:"omitted,omitempty"`
}

// OmittedExec is an exec line `lab up` left out because the kernel lacks
// a feature it needs (kernel.Feature), e.g. a seg6local SID on a kernel
// built without CONFIG_IPV6_SEG6_LWTUNNEL.
type OmittedExec struct {
	Node    string `json:"node"`
	Line    string `json:"line"`
	Feature string `json:"feature"`
	// Missing says what the kernel lacks and the option behind it.
	Missing string `json:"missing"`
}

// MgmtNode is the name under which Exec reaches the management namespace
// (unless the topology has a node of that name).
const MgmtNode = "mgmt"

// LabNode is one node of a running lab.
type LabNode struct {
	// Name is the containerlab node name, D2D the agent's node name.
	Name string `json:"name"`
	D2D  string `json:"d2d"`
	// NetNS is the namespace, named as containerlab names the container.
	NetNS string `json:"netns"`
	// Dir holds the node's config, certificate, agent log, pid file and
	// state directory.
	Dir        string            `json:"dir"`
	StateDir   string            `json:"stateDir"`
	Config     string            `json:"config"`
	Interfaces []string          `json:"interfaces"`
	Env        map[string]string `json:"env"`
	// MgmtIPv4 and MgmtIPv6 are the node's eth0 addresses on the lab's
	// management network, as containerlab gives each container.
	MgmtIPv4 string `json:"mgmtIPv4"`
	MgmtIPv6 string `json:"mgmtIPv6"`
	// PID is the agent's process id (0 if none runs), Running whether it
	// is alive; filled by Status.
	PID     int  `json:"-"`
	Running bool `json:"-"`
}

// AdminSocket is the node agent's chat socket.
func (n *LabNode) AdminSocket() string { return filepath.Join(n.StateDir, "admin.sock") }

// CAFile is the lab CA's certificate, to verify reports against.
func (l *Lab) CAFile() string { return filepath.Join(l.dir, "ca", "ca.crt") }

// Dir is the lab directory.
func (l *Lab) Dir() string { return l.dir }

// Name is the lab name.
func (l *Lab) Name() string { return l.state.Name }

// Topology is the lab's topology.
func (l *Lab) Topology() *containerlab.Topology { return l.topo }

// load reads the topology and names the lab directory.
func loadLab(cfg LabConfig) (*Lab, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	getenv := cfg.Getenv
	topo, err := containerlab.Load(cfg.Topology, getenv)
	if err != nil {
		return nil, err
	}
	if cfg.Name != "" {
		topo.Name = cfg.Name
		if err := topo.Check(); err != nil {
			return nil, err
		}
	}
	if nsPrefix(topo) == "" {
		return nil, fmt.Errorf("%w: an empty container prefix would give namespaces no lab prefix", ErrLab)
	}
	abs, _ := filepath.Abs(cfg.Topology)
	l := &Lab{cfg: cfg, topo: topo, dir: filepath.Join(cfg.Dir, topo.Name), log: cfg.Logger.With("component", "lab", "lab", topo.Name)}
	l.state = labState{Name: topo.Name, Topology: abs, Binary: cfg.Binary, Nodes: map[string]*LabNode{}}
	return l, nil
}

// nsPrefix is what every namespace of the lab starts with.
func nsPrefix(t *containerlab.Topology) string {
	return strings.TrimSuffix(t.ContainerName("\x00"), "\x00")
}

// OpenLab returns a running lab, as `d2d lab up` left it. Without
// Topology, the lab is found by Name in Dir, or, when Dir holds exactly
// one lab, that one.
func OpenLab(cfg LabConfig) (*Lab, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultLabDir
	}
	if cfg.Topology == "" {
		name := cfg.Name
		if name == "" {
			labs := Labs(cfg.Dir)
			if len(labs) != 1 {
				return nil, fmt.Errorf("%w: %d labs are up in %s (%s): name the topology file or the lab", ErrLab, len(labs), cfg.Dir, strings.Join(labs, ", "))
			}
			name = labs[0]
		}
		var st labState
		b, err := os.ReadFile(filepath.Join(cfg.Dir, name, "lab.json"))
		if err == nil {
			err = json.Unmarshal(b, &st)
		}
		if err != nil {
			return nil, fmt.Errorf("%w %s is not up (%v)", ErrLab, name, err)
		}
		cfg.Topology, cfg.Name = st.Topology, st.Name
	}
	l, err := loadLab(cfg)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(l.dir, "lab.json"))
	if err != nil {
		return nil, fmt.Errorf("%w %s is not up (%v)", ErrLab, l.topo.Name, err)
	}
	if err := json.Unmarshal(b, &l.state); err != nil {
		return nil, fmt.Errorf("%w %s: state: %v", ErrLab, l.topo.Name, err)
	}
	return l, nil
}

// Labs lists the labs that have a state file in dir.
func Labs(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "lab.json")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.dir, "lab.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrLab, err)
	}
	return os.Rename(tmp, filepath.Join(l.dir, "lab.json"))
}

// LabUp creates the lab: namespaces, links, exec commands, PKI and agents,
// and waits until every agent's admin socket answers. On failure it
// removes whatever it created, unless D2D_LAB_KEEP is set in the
// environment (to read the agents' logs; `d2d lab down` cleans up then).
func LabUp(ctx context.Context, cfg LabConfig) (l *Lab, err error) {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Getenv("D2D_DOMAIN_KEY") == "" {
		// One fresh key per lab: membership gossip is always encrypted.
		var k [32]byte
		_, _ = rand.Read(k[:])
		key, parent := hex.EncodeToString(k[:]), cfg.Getenv
		cfg.Getenv = func(s string) string {
			if s == "D2D_DOMAIN_KEY" {
				return key
			}
			return parent(s)
		}
	}
	if l, err = loadLab(cfg); err != nil {
		return nil, err
	}
	if err := validateSchema(cfg); err != nil {
		return nil, err
	}
	if left := l.leftovers(); len(left) > 0 {
		return nil, fmt.Errorf("%w %s exists (%s); run `d2d lab down` first", ErrLab, l.topo.Name, strings.Join(left, ", "))
	}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLab, err)
	}
	defer func() {
		if err != nil && os.Getenv("D2D_LAB_KEEP") == "" {
			if derr := l.Down(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, derr)
			}
			l = nil
		}
	}()
	if err := l.save(); err != nil {
		return l, err
	}
	ca, err := signing.NewCA("d2d lab "+l.topo.Name+" CA", signing.DefaultCAValidity)
	if err != nil {
		return l, err
	}
	if err := ca.Save(filepath.Join(l.dir, "ca")); err != nil {
		return l, err
	}
	names := l.topo.NodeNames()
	for _, name := range names {
		n, err := l.prepareNode(name, ca)
		if err != nil {
			return l, err
		}
		l.state.Nodes[name] = n
		if err := l.save(); err != nil {
			return l, err
		}
		if _, err := netns.New(n.NetNS); err != nil {
			return l, err
		}
		// Routers keep an interface's addresses while it is down; so
		// must a lab node, or a link that goes down and up again comes
		// back without its IPv6 addresses.
		if err := run(ctx, "ip", "netns", "exec", n.NetNS, "sysctl", "-qw", "net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1"); err != nil {
			return l, err
		}
	}
	if err := l.addMgmt(ctx, names); err != nil {
		return l, err
	}
	for _, link := range l.topo.Topology.Links {
		if err := l.addLink(ctx, link); err != nil {
			return l, err
		}
	}
	for _, name := range names {
		if err := l.runExecs(ctx, name); err != nil {
			return l, err
		}
	}
	if err := l.save(); err != nil {
		return l, err
	}
	for _, name := range names {
		if err := l.startAgent(name); err != nil {
			return l, err
		}
	}
	if err := l.waitReady(ctx, names); err != nil {
		return l, err
	}
	return l, nil
}

func validateSchema(cfg LabConfig) error {
	path := cfg.Schema
	if path == "" {
		p, err := containerlab.SchemaFromEnv()
		if errors.Is(err, containerlab.ErrNoSchema) {
			return nil
		}
		if err != nil {
			return err
		}
		path = p
	}
	s, err := containerlab.LoadSchema(path)
	if err != nil {
		return err
	}
	return s.ValidateFile(cfg.Topology, cfg.Getenv)
}

// prepareNode resolves a node's settings, issues its certificate and
// writes its agent configuration.
func (l *Lab) prepareNode(name string, ca *signing.CA) (*LabNode, error) {
	spec, err := l.topo.Node(name)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.dir, name)
	n := &LabNode{Name: name, NetNS: l.topo.ContainerName(name), Dir: dir, StateDir: filepath.Join(dir, "state"),
		Config: filepath.Join(dir, "node.yaml"), Interfaces: spec.Interfaces, Env: map[string]string{}}
	for k, v := range spec.Env {
		n.Env[k] = v
	}
	// What containerlab tells every container about itself.
	n.Env["CLAB_LABEL_CLAB_NODE_NAME"] = name
	n.Env["CLAB_LABEL_CONTAINERLAB"] = l.topo.Name
	n.Env["CLAB_INTFS"] = strconv.Itoa(len(spec.Interfaces))
	n.Env["D2D_STATE_DIR"] = n.StateDir

	var cfg agent.Config
	if host, ok := spec.HostPath(configPath(spec.Cmd)); ok {
		if cfg, err = agent.LoadConfig(host); err != nil {
			return nil, err
		}
	}
	cfg.ApplyEnv(func(k string) string { return n.Env[k] })
	if cfg.Node == "" {
		cfg.Node = name
	}
	if err := agent.ValidNodeName(cfg.Node); err != nil {
		return nil, err
	}
	n.D2D = cfg.Node
	// The lab's own places replace the container's.
	cfg.StateDir = n.StateDir
	cfg.AdminSocket = ""
	pki := filepath.Join(dir, "pki")
	cfg.PKI = agent.PKIConfig{CA: filepath.Join(pki, "ca.crt"), Cert: filepath.Join(pki, cfg.Node+".crt"), Key: filepath.Join(pki, cfg.Node+".key")}
	if len(cfg.Discovery.Interfaces) == 0 {
		// The lab links, not the management network's eth0.
		cfg.Discovery.Interfaces = spec.Interfaces
	}
	if cfg.Discovery.Interval == 0 {
		// 1s: a lab should converge in seconds, not LLDP's 30 s.
		cfg.Discovery.Interval = time.Second
	}
	if err := os.MkdirAll(n.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLab, err)
	}
	id, err := ca.Issue(cfg.Node, signing.IssueOptions{Role: signing.RoleDevice})
	if err != nil {
		return nil, err
	}
	if err := id.Save(pki); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(l.CAFile())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLab, err)
	}
	if err := os.WriteFile(cfg.PKI.CA, caPEM, 0o644); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLab, err)
	}
	b, err := marshalConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.Config, b, 0o600); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLab, err)
	}
	return n, nil
}

// marshalConfig writes cfg as YAML without its empty values: the agent
// must read back nil where the file had nothing (a nil policy default
// means "every read-only capability", an empty one "nothing").
func marshalConfig(cfg agent.Config) ([]byte, error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	prune(m)
	return yaml.Marshal(m)
}

// prune deletes null, zero and empty entries of a decoded YAML mapping,
// recursively.
func prune(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			if prune(x); len(x) == 0 {
				delete(m, k)
			}
		case []any:
			if len(x) == 0 {
				delete(m, k)
			}
		case string:
			if x == "" || x == "0s" {
				delete(m, k)
			}
		case int:
			if x == 0 {
				delete(m, k)
			}
		}
	}
}

// configPath finds the --config argument of a node's cmd; the image's
// default is /etc/d2d/node.yaml.
func configPath(cmd string) string {
	f, _ := SplitCommand(cmd)
	for i, a := range f {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
		if (a == "--config" || a == "-config") && i+1 < len(f) {
			return f[i+1]
		}
	}
	return "/etc/d2d/node.yaml"
}

// addMgmt builds the management network containerlab gives every
// container: a bridge in a namespace of its own (named with the lab's
// prefix and "_mgmt", which no node name can be), the first address of
// each subnet on the bridge, and per node an eth0 with the next free
// addresses. Controllers and operators reach the nodes there from
// outside the lab: `d2d lab exec FILE mgmt -- …`.
func (l *Lab) addMgmt(ctx context.Context, names []string) error {
	v4, err := mgmtSubnet(l.topo.Mgmt.IPv4Subnet, containerlab.DefaultMgmtIPv4)
	if err != nil {
		return err
	}
	v6, err := mgmtSubnet(l.topo.Mgmt.IPv6Subnet, containerlab.DefaultMgmtIPv6)
	if err != nil {
		return err
	}
	if !v4.Addr().Is4() || !v6.Addr().Is6() || len(names)+2 >= 1<<(32-v4.Bits()) {
		return fmt.Errorf("%w: management subnets %s and %s: want an IPv4 one with room for %d nodes and an IPv6 one", ErrLab, v4, v6, len(names))
	}
	m := nsPrefix(l.topo) + "_mgmt"
	l.state.Mgmt = m
	if err := l.save(); err != nil {
		return err
	}
	if _, err := netns.New(m); err != nil {
		return err
	}
	l.state.MgmtIPv4, l.state.MgmtIPv6 = nthAddr(v4, 1).String(), nthAddr(v6, 1).String()
	for _, c := range [][]string{
		{"link", "add", "mgmt0", "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", l.state.MgmtIPv4, v4.Bits()), "dev", "mgmt0"},
		{"-6", "addr", "add", fmt.Sprintf("%s/%d", l.state.MgmtIPv6, v6.Bits()), "dev", "mgmt0", "nodad"},
		{"link", "set", "mgmt0", "up"},
	} {
		if err := run(ctx, "ip", append([]string{"-n", m}, c...)...); err != nil {
			return err
		}
	}
	for i, name := range names {
		n := l.state.Nodes[name]
		port := fmt.Sprintf("m%d", i)
		n.MgmtIPv4, n.MgmtIPv6 = nthAddr(v4, i+2).String(), nthAddr(v6, i+2).String()
		for _, c := range [][]string{
			{"-n", n.NetNS, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", m},
			{"-n", m, "link", "set", port, "master", "mgmt0", "up"},
			{"-n", n.NetNS, "addr", "add", fmt.Sprintf("%s/%d", n.MgmtIPv4, v4.Bits()), "dev", "eth0"},
			{"-n", n.NetNS, "-6", "addr", "add", fmt.Sprintf("%s/%d", n.MgmtIPv6, v6.Bits()), "dev", "eth0", "nodad"},
			{"-n", n.NetNS, "link", "set", "eth0", "up"},
		} {
			if err := run(ctx, "ip", c...); err != nil {
				return err
			}
		}
	}
	return l.save()
}

func mgmtSubnet(s, def string) (netip.Prefix, error) {
	if s == "" || s == "auto" {
		s = def
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: management subnet %q: %v", ErrLab, s, err)
	}
	return p.Masked(), nil
}

// nthAddr is the n-th address of p (n < 65536).
func nthAddr(p netip.Prefix, n int) netip.Addr {
	b := p.Addr().AsSlice()
	carry := n
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		sum := int(b[i]) + carry
		b[i], carry = byte(sum), sum>>8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// addLink creates a veth pair directly inside the two namespaces, so no
// half-made link can be left in the host's namespace.
func (l *Lab) addLink(ctx context.Context, link containerlab.Link) error {
	a, b := link.Endpoints[0], link.Endpoints[1]
	mtu := link.MTU
	if mtu == 0 {
		mtu = containerlab.DefaultMTU
	}
	na, nb := l.state.Nodes[a.Node].NetNS, l.state.Nodes[b.Node].NetNS
	m := strconv.Itoa(mtu)
	if err := run(ctx, "ip", "-n", na, "link", "add", a.Interface, "mtu", m, "type", "veth", "peer", "name", b.Interface, "mtu", m, "netns", nb); err != nil {
		return err
	}
	if err := run(ctx, "ip", "-n", na, "link", "set", a.Interface, "up"); err != nil {
		return err
	}
	return run(ctx, "ip", "-n", nb, "link", "set", b.Interface, "up")
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v: %s", ErrLab, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// runExecs runs a node's exec commands in its namespace, in order, each
// split into words as containerlab splits them (no shell).
func (l *Lab) runExecs(ctx context.Context, name string) error {
	spec, err := l.topo.Node(name)
	if err != nil {
		return err
	}
	n := l.state.Nodes[name]
	for _, line := range spec.Exec {
		argv, err := SplitCommand(line)
		if err != nil {
			return fmt.Errorf("%w: node %s: exec %q: %v", ErrLab, name, line, err)
		}
		if len(argv) == 0 {
			continue
		}
		if f, lacks := kernel.Lacks(argv); lacks {
			l.state.Omitted = append(l.state.Omitted, OmittedExec{Node: name, Line: line, Feature: string(f), Missing: f.Missing()})
			l.log.Warn("exec line left out", "node", name, "line", line, "reason", f.Missing())
			continue
		}
		cmd := l.command(ctx, n, argv)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w: node %s: exec %q: %v: %s", ErrLab, name, line, err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// command prepares argv to run inside node n with the node's environment.
// A leading "d2d" is the lab's own binary.
func (l *Lab) command(ctx context.Context, n *LabNode, argv []string) *exec.Cmd {
	if argv[0] == "d2d" {
		argv = append([]string{l.state.Binary}, argv[1:]...)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NetNS}, argv...)...)
	cmd.Env = l.environ(n)
	return cmd
}

func (l *Lab) environ(n *LabNode) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, over := n.Env[k]
		return over
	})
	for k, v := range n.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// startAgent starts the node's agent in its namespace as a daemon of its
// own session, so it outlives `d2d lab up`.
func (l *Lab) startAgent(name string) error {
	n := l.state.Nodes[name]
	logf, err := os.OpenFile(filepath.Join(n.Dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLab, err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", n.NetNS, l.state.Binary, "agent", "--config", n.Config, "--log-level", l.cfg.LogLevel)
	cmd.Env = l.environ(n)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: node %s: starting agent: %v", ErrLab, name, err)
	}
	// `ip netns exec` execs the agent, so this pid is the agent's.
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(n.Dir, "agent.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("%w: %v", ErrLab, err)
	}
	// Reap it when it ends while this process lives on (tests, a long
	// `lab up`); after `d2d lab up` exits, init does.
	go func() { _ = cmd.Wait() }()
	l.log.Info("agent started", "node", name, "d2d", n.D2D, "pid", pid, "netns", n.NetNS)
	return nil
}

// waitReady waits until every named node's admin socket accepts a
// connection; an agent that exits meanwhile fails the wait with the tail
// of its log.
func (l *Lab) waitReady(ctx context.Context, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.StartTimeout)
	defer cancel()
	for _, name := range names {
		n := l.state.Nodes[name]
		for {
			c, err := net.Dial("unix", n.AdminSocket())
			if err == nil {
				c.Close()
				break
			}
			if pid := readPID(n); !alive(pid) {
				return fmt.Errorf("%w: node %s: agent exited: %s", ErrLab, name, l.logTail(n))
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: node %s: agent not ready: %v: %s", ErrLab, name, ctx.Err(), l.logTail(n))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func (l *Lab) logTail(n *LabNode) string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "agent.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// WaitConverged waits until every running agent lists every other running
// agent as a member of its domain (LLDP neighbours joined into membership).
func (l *Lab) WaitConverged(ctx context.Context) error {
	var want []string
	for _, n := range l.nodes() {
		if pid := readPID(n); pid != 0 && l.ours(pid, n) {
			want = append(want, n.D2D)
		}
	}
	for {
		var missing []string
		for _, n := range l.nodes() {
			if !slices.Contains(want, n.D2D) {
				continue
			}
			var out bytes.Buffer
			err := agent.Chat(ctx, agent.ChatOptions{Socket: n.AdminSocket(), Command: "show domain", In: strings.NewReader(""), Out: &out})
			seen := map[string]bool{}
			for _, line := range strings.Split(out.String(), "\n") {
				if f := strings.Fields(line); len(f) > 0 {
					seen[f[0]] = true
				}
			}
			for _, w := range want {
				if err != nil || !seen[w] {
					missing = append(missing, n.D2D+" does not see "+w)
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: domain did not converge: %s: %v", ErrLab, strings.Join(missing, "; "), ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// nodes returns the lab's nodes sorted by name.
func (l *Lab) nodes() []*LabNode {
	out := make([]*LabNode, 0, len(l.state.Nodes))
	for _, name := range sortedKeysOf(l.state.Nodes) {
		out = append(out, l.state.Nodes[name])
	}
	return out
}

func sortedKeysOf[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// Node finds a node by containerlab or d2d name. MgmtNode, unless a node
// has that name, is the management namespace, outside every node.
func (l *Lab) Node(name string) (*LabNode, error) {
	if n, ok := l.state.Nodes[name]; ok {
		return n, nil
	}
	if name == MgmtNode && l.state.Mgmt != "" {
		return &LabNode{Name: MgmtNode, NetNS: l.state.Mgmt, Dir: l.dir, Env: map[string]string{}}, nil
	}
	for _, n := range l.state.Nodes {
		if n.D2D == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w %s has no node %q (nodes: %s)", ErrLab, l.state.Name, name, strings.Join(sortedKeysOf(l.state.Nodes), ", "))
}

// Exec runs argv inside a node with the node's environment (D2D_STATE_DIR
// points at its agent, so `d2d chat` attaches to it) and returns the
// command's exit status.
func (l *Lab) Exec(ctx context.Context, node string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	n, err := l.Node(node)
	if err != nil {
		return -1, err
	}
	if len(argv) == 0 {
		return -1, fmt.Errorf("%w: exec: no command", ErrLab)
	}
	cmd := l.command(ctx, n, argv)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("%w: exec on %s: %v", ErrLab, node, err)
	}
	return 0, nil
}

// Status returns the nodes with their agents' state.
func (l *Lab) Status() []LabNode {
	var out []LabNode
	for _, n := range l.nodes() {
		s := *n
		s.PID = readPID(n)
		s.Running = s.PID != 0 && l.ours(s.PID, n)
		out = append(out, s)
	}
	return out
}

// Mgmt returns the management namespace and the bridge's addresses.
func (l *Lab) Mgmt() (ns, ipv4, ipv6 string) { return l.state.Mgmt, l.state.MgmtIPv4, l.state.MgmtIPv6 }

// Omitted returns the exec lines left out for kernel features this host
// lacks.
func (l *Lab) Omitted() []OmittedExec { return slices.Clone(l.state.Omitted) }

// Faults returns the faults in force.
func (l *Lab) Faults() []LabFault { return slices.Clone(l.state.Faults) }

// NamespaceExists reports whether a namespace of that name exists.
func NamespaceExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

func readPID(n *LabNode) int {
	b, err := os.ReadFile(filepath.Join(n.Dir, "agent.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// ours reports whether pid is a live agent of this lab: its command line
// names the node's config file in the lab directory. A zombie is not alive.
func (l *Lab) ours(pid int, n *LabNode) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(n.Config)) {
		return false
	}
	return alive(pid)
}

// alive reports whether pid is a process that is not a zombie. (Between
// fork and exec a starting agent still shows its parent's command line,
// so readiness waits on this rather than on ours.)
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// stopAgent ends a node's agent: SIGTERM, then SIGKILL after grace.
func (l *Lab) stopAgent(n *LabNode, sig syscall.Signal, grace time.Duration) error {
	pid := readPID(n)
	defer os.Remove(filepath.Join(n.Dir, "agent.pid"))
	if !l.ours(pid, n) {
		return nil
	}
	_ = syscall.Kill(pid, sig)
	deadline := time.Now().Add(grace)
	for l.ours(pid, n) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
			sig = syscall.SIGKILL
			for l.ours(pid, n) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if l.ours(pid, n) {
				return fmt.Errorf("%w: node %s: agent %d does not exit", ErrLab, n.Name, pid)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// leftovers names what exists of the lab: namespaces, the lab directory.
func (l *Lab) leftovers() []string {
	var out []string
	out = append(out, labNamespaces(nsPrefix(l.topo))...)
	if _, err := os.Stat(l.dir); err == nil {
		out = append(out, l.dir)
	}
	return out
}

// labNamespaces lists the namespaces whose name starts with prefix.
func labNamespaces(prefix string) []string {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// Down removes the lab: it stops the agents, deletes the namespaces (and
// with them the veths, addresses, routes and nftables rules inside) and
// the lab directory. It works from names alone, so it also removes what a
// crashed `lab up` left; calling it on a lab that is not there does
// nothing.
func (l *Lab) Down(ctx context.Context) error {
	var errs []error
	// Agents first: a namespace is freed only once no process is in it.
	ents, _ := os.ReadDir(l.dir)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(l.dir, e.Name())
		n := &LabNode{Name: e.Name(), Dir: dir, Config: filepath.Join(dir, "node.yaml")}
		if err := l.stopAgent(n, syscall.SIGTERM, 5*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range labNamespaces(nsPrefix(l.topo)) {
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(l.dir); err != nil {
		errs = append(errs, fmt.Errorf("%w: %v", ErrLab, err))
	}
	return errors.Join(errs...)
}

// LabDown removes a lab by its topology (and name override), whether or
// not it is complete.
func LabDown(ctx context.Context, cfg LabConfig) error {
	l, err := loadLab(cfg)
	if err != nil {
		return err
	}
	return l.Down(ctx)
}

// SplitCommand splits an exec line into words as a POSIX shell would,
// without expanding anything: single quotes keep text literally, double
// quotes keep it but honour backslash escapes of \, ", $ and `, and a
// backslash outside quotes escapes the next character.
func SplitCommand(s string) ([]string, error) {
	var (
		out   []string
		cur   strings.Builder
		inTok bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inTok {
				out = append(out, cur.String())
				cur.Reset()
				inTok = false
			}
		case c == '\\':
			inTok = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		case c == '\'':
			inTok = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inTok = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		default:
			inTok = true
			cur.WriteByte(c)
		}
	}
	if inTok {
		out = append(out, cur.String())
	}
	return out, nil
}
