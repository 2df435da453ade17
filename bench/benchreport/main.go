// Command benchreport turns `go test -bench` output into the project's
// benchmark results: bench/results.json (one record per figure: name,
// metric, value, unit, the command that reproduces it, date, machine
// cores), bench/results.md (a short table), SVG plots of the figures
// whose curve says more than a table, and, with -table, the README's
// performance table (bench/README-table.md) from results.json.
//
//	go test -run '^$' -bench . -benchmem ./... | go run ./bench/benchreport -out bench
//	go run ./bench/benchreport -table -out bench
//
// The plots are drawn by this program as plain SVG: no plotting tools.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is one figure of one benchmark.
type Result struct {
	// Name is the benchmark's full name without the -GOMAXPROCS suffix,
	// e.g. "BenchmarkFanOut/10".
	Name    string  `json:"name"`
	Package string  `json:"package"`
	Metric  string  `json:"metric"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	// Iterations is b.N of the run the figure comes from.
	Iterations int `json:"iterations"`
	// Command reproduces the figure.
	Command string `json:"command"`
	Date    string `json:"date"`
	Cores   int    `json:"cores"`
	CPU     string `json:"cpu,omitempty"`
}

func main() {
	var (
		out       = flag.String("out", "bench", "directory of the results")
		in        = flag.String("in", "-", "go test -bench output (- for stdin)")
		table     = flag.Bool("table", false, "write README-table.md from results.json and stop")
		benchtime = flag.String("benchtime", "", "the -benchtime the results were run with, for the commands")
		prefix    = flag.String("prefix", "", "what the commands need before go test, e.g. GOGC=400 or sudo")
		readme    = flag.String("readme", "", "with -table, also replace the table between the bench-table markers of this file")
	)
	flag.Parse()
	cmdPrefix = *prefix
	err := run(*in, *out, *benchtime, *table)
	if err == nil && *table && *readme != "" {
		err = updateReadme(*readme, filepath.Join(*out, "README-table.md"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(in, out, benchtime string, table bool) error {
	if table {
		rs, err := load(filepath.Join(out, "results.json"))
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(out, "README-table.md"), []byte(readmeTable(rs)), 0o644)
	}
	var r io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	rs, err := parse(r, benchtime, time.Now().UTC())
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return fmt.Errorf("no benchmark results in the input")
	}
	// Merge with earlier results: figures not re-run keep their old values
	// (a partial run, or a privileged figure measured separately).
	if old, err := load(filepath.Join(out, "results.json")); err == nil {
		seen := map[string]bool{}
		for _, x := range rs {
			seen[x.Package+" "+x.Name+" "+x.Unit] = true
		}
		for _, x := range old {
			if !seen[x.Package+" "+x.Name+" "+x.Unit] {
				rs = append(rs, x)
			}
		}
	}
	slices.SortStableFunc(rs, func(a, b Result) int {
		return strings.Compare(a.Package+" "+a.Name, b.Package+" "+b.Name)
	})
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rs, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(mdTable(rs)), 0o644); err != nil {
		return err
	}
	for _, p := range plots {
		svg, ok := p.render(rs)
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(out, p.file), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(out, "README-table.md"), []byte(readmeTable(rs)), 0o644)
}

func load(path string) ([]Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rs []Result
	return rs, json.Unmarshal(b, &rs)
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-(\d+))?\s+(\d+)\s+(.*)$`)

// parse reads go test -bench output. "pkg:" and "cpu:" lines name the
// package and processor of the lines that follow.
func parse(r io.Reader, benchtime string, now time.Time) ([]Result, error) {
	var (
		out      []Result
		pkg, cpu string
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(v)
			continue
		}
		if v, ok := strings.CutPrefix(line, "cpu: "); ok {
			cpu = strings.TrimSpace(v)
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		iters, _ := strconv.Atoi(m[3])
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			unit := f[i+1]
			out = append(out, Result{
				Name: m[1], Package: pkg, Metric: metricName(unit), Value: v, Unit: unit,
				Iterations: iters, Command: command(pkg, m[1], benchtime),
				Date: now.Format(time.RFC3339), Cores: runtime.NumCPU(), CPU: cpu,
			})
		}
	}
	return out, sc.Err()
}

// metricName says in words what a unit measures.
func metricName(unit string) string {
	switch unit {
	case "ns/op":
		return "time per operation"
	case "B/op":
		return "bytes allocated per operation"
	case "allocs/op":
		return "allocations per operation"
	case "MB/s":
		return "throughput"
	}
	return strings.ReplaceAll(unit, "/", " per ")
}

// cmdPrefix goes before every command (-prefix).
var cmdPrefix string

// command is the go test invocation that reruns one benchmark.
func command(pkg, name, benchtime string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	rel := "./" + strings.TrimPrefix(strings.TrimPrefix(pkg, "github.com/d2dmesh/d2d"), "/")
	if rel == "./" {
		rel = "."
	}
	bt := ""
	if benchtime != "" {
		bt = " -benchtime " + benchtime
	}
	pre := ""
	if cmdPrefix != "" {
		pre = cmdPrefix + " "
	}
	return fmt.Sprintf("%sgo test -run '^$' -bench '%s' -benchmem%s %s", pre, strings.Join(parts, "/"), bt, rel)
}

func mdTable(rs []Result) string {
	var b strings.Builder
	b.WriteString("| package | benchmark | value | unit |\n| --- | --- | ---: | --- |\n")
	for _, r := range rs {
		if r.Unit == "B/op" || r.Unit == "allocs/op" {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", strings.TrimPrefix(r.Package, "github.com/d2dmesh/d2d/"), r.Name, num(r.Value), r.Unit)
	}
	if len(rs) > 0 {
		fmt.Fprintf(&b, "\n%d cores (%s), %s. Allocation figures are in results.json.\n", rs[0].Cores, rs[0].CPU, rs[0].Date)
	}
	return b.String()
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func find(rs []Result, name, unit string) (Result, bool) {
	for _, r := range rs {
		if r.Name == name && r.Unit == unit {
			return r, true
		}
	}
	return Result{}, false
}

// readmeRow is one line of the README's performance table.
type readmeRow struct {
	what, name, unit, target string
	scale                    float64 // multiplies the value
	shown                    string  // unit as shown
}

var readmeRows = []readmeRow{
	{"Intent to verified stored report, headline scenario (3 agents, loopback QUIC)", "BenchmarkIntentToReport/nodes=3", "ms/report", "< 50 ms", 1, "ms"},
	{"… same, 30 agents, 16-node path", "BenchmarkIntentToReport/nodes=30", "ms/report", "< 100 ms", 1, "ms"},
	{"Signed tools/call on one session (d2d over mTLS QUIC)", "BenchmarkSignedCall", "calls/s", "≥ SDK", 1, "calls/s"},
	{"Unsigned tools/call, official MCP Go SDK over streamable HTTP", "BenchmarkSDKStreamableCall", "calls/s", "", 1, "calls/s"},
	{"Handshake + initialize (QUIC, TLS 1.3 mutual, MCP)", "BenchmarkHandshake", "ns/op", "", 1e-6, "ms"},
	{"Batch verify, 1024 signatures of 1024 signers (CPU per signature)", "BenchmarkVerifyBatch/1024/signers=1024", "cpu-ns/sig", "≤ ½ one-by-one", 1e-3, "µs"},
	{"… crypto/ed25519 one by one, same run", "BenchmarkVerifyOneByOne/1024/signers=1024", "cpu-ns/sig", "", 1e-3, "µs"},
	{"Time to a verified report, 10 agents (cold / warm)", "BenchmarkScaleTimeToReport/10", "s/report-cold", "", 1, "s"},
	{"Time to a verified report, 100 agents", "BenchmarkScaleTimeToReport/100", "s/report-cold", "", 1, "s"},
	{"Time to a verified report, 1000 agents, 5-hop path", "BenchmarkScaleTimeToReport/1000", "s/report-cold", "< 2 s", 1, "s"},
	{"D2D / controller time, controller link healthy", "BenchmarkD2DVersusController/healthy", "d2d/controller", "", 1, "×"},
	{"D2D / controller time, controller link impaired (+50 ms, 5 % loss)", "BenchmarkD2DVersusController/impaired", "d2d/controller", "≤ 0.5×", 1, "×"},
	{"… same, 30 agents over real loopback QUIC (controller socket wrapped)", "BenchmarkD2DVersusControllerLoopback/impaired", "d2d/controller", "≤ 0.5×", 1, "×"},
	{"Membership convergence, 50 members", "BenchmarkMembershipConvergence/50", "s/converge", "", 1, "s"},
	{"Membership convergence, 200 members", "BenchmarkMembershipConvergence/200", "s/converge", "", 1, "s"},
	{"Membership convergence, 1000 members", "BenchmarkMembershipConvergence/1000", "s/converge", "< 3 s", 1, "s"},
	{"… floor in one process: CPU time for 1000 members to learn each other once (n(n−1) entries)", "BenchmarkMembershipLearn/1000", "floor-cpu-s", "", 1, "CPU-s"},
	{"News of a join / a leave reaching all 200 members (memberlist LAN preset)", "BenchmarkMembershipNews/200", "s/join-news", "", 1, "s"},
	{"Fan-out of signed calls, 1 / 10 / 100 peers", "BenchmarkFanOut/1", "ns/op", "100 peers ≤ 3× 1 peer", 1e-6, "ms"},
	{"… floor: 100 callee signatures + the caller's batch check, CPU time", "BenchmarkFanOutCryptoFloor/100", "cpu-ns/op", "", 1e-6, "CPU-ms"},
	{"Idle agent resident memory (3-node netns lab)", "BenchmarkAgentIdleRSS", "MB/agent", "< 40 MB", 1, "MB"},
}

func readmeTable(rs []Result) string {
	var b strings.Builder
	b.WriteString("| figure | measured | target | reproduce with |\n| --- | ---: | --- | --- |\n")
	var date string
	cores := 0
	for _, row := range readmeRows {
		r, ok := find(rs, row.name, row.unit)
		if !ok {
			continue
		}
		v := num(r.Value*row.scale) + " " + row.shown
		switch {
		case strings.HasPrefix(row.name, "BenchmarkFanOut/"):
			var vs []string
			for _, n := range []string{"1", "10", "100"} {
				if x, ok := find(rs, "BenchmarkFanOut/"+n, "ns/op"); ok {
					vs = append(vs, num(x.Value*1e-6))
				}
			}
			v = strings.Join(vs, " / ") + " ms"
		case row.shown == "CPU-s" || row.shown == "CPU-ms":
			// A CPU-time floor: on the measuring machine's cores the
			// wall time cannot be shorter than this share.
			if r.Cores > 0 {
				v += fmt.Sprintf(" (≥ %s %s on %d cores)", num(r.Value*row.scale/float64(r.Cores)), strings.TrimPrefix(row.shown, "CPU-"), r.Cores)
			}
		case row.name == "BenchmarkMembershipNews/200":
			if l, ok := find(rs, row.name, "s/leave-news"); ok {
				v = num(r.Value) + " / " + num(l.Value) + " s"
			}
		case strings.HasPrefix(row.name, "BenchmarkScaleTimeToReport/10") && row.name == "BenchmarkScaleTimeToReport/10":
			if w, ok := find(rs, row.name, "s/report"); ok {
				v = num(r.Value) + " / " + num(w.Value) + " s"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | `%s` |\n", row.what, v, row.target, r.Command)
		date, cores = r.Date, r.Cores
	}
	if date != "" {
		fmt.Fprintf(&b, "\nMeasured with `make bench` on %d cores, %s; details and reproduction commands in BENCHMARKS.md.\n", cores, date[:10])
	}
	return b.String()
}

// The README's performance table sits between these markers, so that it
// is always the generated one, never typed by hand.
const (
	tableStart = "<!-- bench-table: generated by `make bench-table` from bench/results.json -->"
	tableEnd   = "<!-- /bench-table -->"
)

// updateReadme replaces the table between the markers of readme.
func updateReadme(readme, tableFile string) error {
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	table, err := os.ReadFile(tableFile)
	if err != nil {
		return err
	}
	s := string(doc)
	i, j := strings.Index(s, tableStart), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q … %q markers", readme, tableStart, tableEnd)
	}
	s = s[:i+len(tableStart)] + "\n" + string(table) + s[j:]
	return os.WriteFile(readme, []byte(s), 0o644)
}
