package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is an agent's configuration, read from node.yaml. The zero value
// works for a test agent on loopback; every field's doc gives its default.
// Values are taken, in increasing precedence, from the file, from the
// environment (D2D_* and containerlab's CLAB_* variables) and from flags.
type Config struct {
	// Node is the node name. If empty: D2D_NODE, then containerlab's
	// CLAB_LABEL_CLAB_NODE_NAME, then the host name.
	Node string `yaml:"node"`
	// Listen is the UDP address of the D2D endpoint. If empty, ":9514"
	// (draft 003 §5.3.1: mcp-d2d-port = 9514).
	Listen string `yaml:"listen"`
	// Advertise is the address peers should dial, advertised in discovery.
	// If empty, the address of the interface discovery runs on.
	Advertise string `yaml:"advertise"`
	// StateDir holds reports, nonces, the audit trail and shell history.
	// If empty, /var/lib/d2d.
	StateDir string `yaml:"state_dir"`
	// AdminSocket is the chat shell's Unix socket (mode 0600). If empty,
	// StateDir/admin.sock.
	AdminSocket string `yaml:"admin_socket"`

	PKI       PKIConfig       `yaml:"pki"`
	Discovery DiscoveryConfig `yaml:"discovery"`
	Backend   BackendConfig   `yaml:"backend"`
	Policy    PolicyConfig    `yaml:"policy"`

	// Controller, if set, is where reports are pushed and who may poll
	// peers on this node's behalf ("name@host:port", optionally
	// "=thumbprint"; `d2d controller serve` listens on 9515). Every
	// stored or updated report is pushed (tool report-push) in the
	// background, after the answer, and once accepted marked pulled; when
	// the controller is unreachable the report stays on the box and the
	// push is retried (30 s, doubling up to 10 min, also after a
	// restart) until a push or `d2d controller pull` gets it there. A
	// peer that times out or
	// fails authentication is polled through it (tool poll). The peer
	// must authenticate with a certificate of role controller; any other
	// is refused (controller.ErrNotController) and gets nothing.
	Controller string `yaml:"controller"`
	// CallTimeout bounds each remote call. If zero, 15s: a 100-probe SRv6
	// ping at the default 10 ms interval needs about 1 s, the rest is slack
	// for slow control planes.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// ProbeCount is the default number of probes per measurement. If zero, 100
	// (the draft's example).
	ProbeCount int `yaml:"probe_count"`
	// RollbackSeconds is the default rollback timer of a consented change.
	// If zero, 120.
	RollbackSeconds int `yaml:"rollback_seconds"`
	// Operators maps local user names to roles for consent objects. A user
	// not listed gets the role "operator".
	Operators map[string]string `yaml:"operators"`
	// LLM optionally phrases summaries and plans free text; off when URL is empty.
	LLM LLMConfig `yaml:"llm"`
}

// PKIConfig names the certificate files.
type PKIConfig struct {
	// CA is the domain CA certificate. If empty, StateDir/pki/ca.crt.
	CA string `yaml:"ca"`
	// Cert and Key are the node's certificate and key. If empty,
	// StateDir/pki/<node>.crt and .key.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// Service is the CA service ("name@host:port", UDP; `d2d ca serve`
	// listens on 9516). If set, the agent renews its certificate there at
	// two thirds of its lifetime, without a restart, and fetches the
	// revocation list every RevocationInterval. If empty, neither: the
	// certificate expires and the list is only what Revocations holds.
	Service string `yaml:"service"`
	// Revocations is the revocation list file, loaded at start and
	// rewritten as newer lists arrive. If empty, StateDir/pki/crl.pem.
	Revocations string `yaml:"revocations"`
	// RevocationInterval is how often the list is fetched: the longest a
	// revoked peer stays accepted. If zero, 5m.
	RevocationInterval time.Duration `yaml:"revocation_interval"`
}

// DiscoveryConfig configures neighbour discovery and membership.
type DiscoveryConfig struct {
	// Mode is "lldp" (default), "isis" or "off".
	Mode string `yaml:"mode"`
	// Interfaces to run discovery on. If empty, every non-loopback
	// interface that is up; under containerlab the agent waits for
	// CLAB_INTFS data interfaces first.
	Interfaces []string `yaml:"interfaces"`
	// Interval between advertisements. If zero, 30s (LLDP's msgTxInterval
	// default, IEEE 802.1AB).
	Interval time.Duration `yaml:"interval"`
	// Holdtime after which a silent neighbour expires. If zero, 4×Interval
	// (LLDP's msgTxHold default).
	Holdtime time.Duration `yaml:"holdtime"`
	// Gossip is the membership listen address. If empty, ":7946".
	Gossip string `yaml:"gossip"`
	// DomainKey is the hex membership encryption key (16, 24 or 32 bytes),
	// or "@file" to read it from a file. Empty disables encryption, which
	// the agent only allows on loopback.
	DomainKey string `yaml:"domain_key"`
	// Join lists extra membership seeds ("host:port").
	Join []string `yaml:"join"`
}

// BackendConfig selects the device backend.
type BackendConfig struct {
	// Kind is "linux" (default): the kernel the agent runs in.
	Kind string `yaml:"kind"`
	// Names maps node names to the SID or address probes use to reach
	// them, for SID lists given as names. Members' advertised endpoint
	// addresses fill in what is not listed.
	Names map[string]string `yaml:"names"`
}

// PolicyConfig is the whitelist of neighbour-callable capabilities
// (draft 003 §1, §5.2): what a peer may call on this node.
type PolicyConfig struct {
	// Default applies to peers not otherwise listed. If nil, every
	// read-only capability (no mutating tool).
	Default []string `yaml:"default"`
	// ByRole and ByNode override Default for a certificate role or node.
	// Without a by_role entry "controller", a controller's certificate
	// gets the read-only capabilities plus ietf-mcp-report,
	// report-mark-pulled and privacy:3 (see policyFrom).
	ByRole map[string][]string `yaml:"by_role"`
	ByNode map[string][]string `yaml:"by_node"`
}

// LLMConfig configures an OpenAI-compatible chat-completions endpoint.
type LLMConfig struct {
	URL    string `yaml:"url"`
	Model  string `yaml:"model"`
	APIKey string `yaml:"api_key"`
}

// ErrConfig marks a configuration error.
var ErrConfig = errors.New("node: bad configuration")

// LoadConfig reads a YAML configuration file; unknown keys are errors, so
// a misspelt option never silently falls back to its default.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("node: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	return c, nil
}

// ApplyEnv overrides fields from the environment: D2D_NODE, D2D_LISTEN,
// D2D_STATE_DIR, D2D_CONTROLLER, D2D_DISCOVERY_MODE, D2D_DOMAIN_KEY and
// containerlab's CLAB_LABEL_CLAB_NODE_NAME.
func (c *Config) ApplyEnv(getenv func(string) string) {
	set := func(dst *string, keys ...string) {
		for _, k := range keys {
			if v := getenv(k); v != "" {
				*dst = v
				return
			}
		}
	}
	if c.Node == "" {
		set(&c.Node, "D2D_NODE", "CLAB_LABEL_CLAB_NODE_NAME")
	} else {
		set(&c.Node, "D2D_NODE")
	}
	set(&c.Listen, "D2D_LISTEN")
	set(&c.StateDir, "D2D_STATE_DIR")
	set(&c.Controller, "D2D_CONTROLLER")
	set(&c.Discovery.Mode, "D2D_DISCOVERY_MODE")
	set(&c.Discovery.DomainKey, "D2D_DOMAIN_KEY")
}

// populate fills defaults and checks values.
func (c *Config) populate() error {
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("%w: no node name and no host name: %v", ErrConfig, err)
		}
		c.Node = h
	}
	if err := ValidNodeName(c.Node); err != nil {
		return err
	}
	if c.Listen == "" {
		c.Listen = ":9514"
	}
	if _, err := netip.ParseAddrPort(withHost(c.Listen)); err != nil {
		return fmt.Errorf("%w: listen %q: %v", ErrConfig, c.Listen, err)
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/d2d"
	}
	if c.AdminSocket == "" {
		c.AdminSocket = filepath.Join(c.StateDir, "admin.sock")
	}
	if c.PKI.CA == "" {
		c.PKI.CA = filepath.Join(c.StateDir, "pki", "ca.crt")
	}
	if c.PKI.Cert == "" {
		c.PKI.Cert = filepath.Join(c.StateDir, "pki", c.Node+".crt")
	}
	if c.PKI.Key == "" {
		c.PKI.Key = filepath.Join(c.StateDir, "pki", c.Node+".key")
	}
	if c.PKI.Revocations == "" {
		c.PKI.Revocations = filepath.Join(c.StateDir, "pki", "crl.pem")
	}
	switch c.Discovery.Mode {
	case "":
		c.Discovery.Mode = "lldp"
	case "lldp", "isis", "off":
	default:
		return fmt.Errorf("%w: discovery mode %q (want lldp, isis or off)", ErrConfig, c.Discovery.Mode)
	}
	if c.Discovery.Interval == 0 {
		c.Discovery.Interval = 30 * time.Second
	}
	if c.Discovery.Holdtime == 0 {
		c.Discovery.Holdtime = 4 * c.Discovery.Interval
	}
	if c.Discovery.Holdtime < c.Discovery.Interval {
		return fmt.Errorf("%w: holdtime %v shorter than interval %v", ErrConfig, c.Discovery.Holdtime, c.Discovery.Interval)
	}
	if c.Discovery.Gossip == "" {
		c.Discovery.Gossip = ":7946"
	}
	if c.Backend.Kind == "" {
		c.Backend.Kind = "linux"
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 15 * time.Second
	}
	if c.ProbeCount == 0 {
		c.ProbeCount = 100
	}
	if c.RollbackSeconds == 0 {
		c.RollbackSeconds = 120
	}
	return nil
}

// ValidNodeName accepts names usable as certificate SANs, LLDP system
// names and file names: 1–63 characters of letters, digits, '-', '_', '.'.
func ValidNodeName(n string) error {
	if n == "" || len(n) > 63 {
		return fmt.Errorf("%w: node name %q must have 1 to 63 characters", ErrConfig, n)
	}
	for _, r := range n {
		ok := r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return fmt.Errorf("%w: node name %q: character %q not allowed", ErrConfig, n, r)
		}
	}
	return nil
}

// withHost turns ":9514" into "0.0.0.0:9514" for parsing.
func withHost(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "0.0.0.0" + addr
	}
	return addr
}

// Port returns the port of the listen address.
func (c *Config) Port() uint16 {
	ap, err := netip.ParseAddrPort(withHost(c.Listen))
	if err != nil {
		return 0
	}
	return ap.Port()
}
