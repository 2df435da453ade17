package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// series is one curve: the sub-benchmarks of Bench (named by their x
// value) and the unit whose value is plotted, times Scale. PerCore
// divides a CPU time by the measuring machine's cores: the least wall
// time that CPU time can take there.
type series struct {
	Label   string
	Bench   string
	Unit    string
	Scale   float64
	PerCore bool
}

// plot is one SVG figure with a logarithmic x axis.
type plot struct {
	file, title, xLabel, yLabel string
	series                      []series
}

var plots = []plot{
	{
		file: "time-to-report.svg", title: "Time to a verified report vs domain size (5-hop path)",
		xLabel: "agents in the domain", yLabel: "seconds",
		series: []series{
			{"first run (opens sessions)", "BenchmarkScaleTimeToReport", "s/report-cold", 1, false},
			{"later runs (sessions reused)", "BenchmarkScaleTimeToReport", "s/report", 1, false},
			{"first run, real loopback QUIC sockets", "BenchmarkScaleTimeToReportLoopback", "s/report-cold", 1, false},
		},
	},
	{
		file: "membership-convergence.svg", title: "Membership convergence vs members (in-memory, 2 cores)",
		xLabel: "members", yLabel: "seconds until all see all",
		series: []series{
			{"join in a tree", "BenchmarkMembershipConvergence", "s/converge", 1, false},
			{"join ring neighbours at once", "BenchmarkMembershipConvergenceRing", "s/converge", 1, false},
			{"floor: learning n(n-1) entries, CPU ÷ cores", "BenchmarkMembershipLearn", "floor-cpu-s", 1, true},
		},
	},
	{
		file: "fanout.svg", title: "Fan-out of signed calls vs peers (loopback QUIC)",
		xLabel: "peers", yLabel: "milliseconds per fan-out",
		series: []series{
			{"fan-out round", "BenchmarkFanOut", "ns/op", 1e-6, false},
			{"floor: signatures and batch check, CPU ÷ cores", "BenchmarkFanOutCryptoFloor", "cpu-ns/op", 1e-6, true},
		},
	},
}

type point struct{ x, y float64 }

func (p plot) points(rs []Result) [][]point {
	out := make([][]point, len(p.series))
	for i, s := range p.series {
		for _, r := range rs {
			sub, ok := strings.CutPrefix(r.Name, s.Bench+"/")
			if !ok || r.Unit != s.Unit {
				continue
			}
			x, err := strconv.ParseFloat(sub, 64)
			if err != nil || x <= 0 {
				continue
			}
			y := r.Value * s.Scale
			if s.PerCore {
				if r.Cores <= 0 {
					continue
				}
				y /= float64(r.Cores)
			}
			out[i] = append(out[i], point{x, y})
		}
	}
	return out
}

var colours = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

// render draws the plot; ok is false when no series has a point.
func (p plot) render(rs []Result) (string, bool) {
	pts := p.points(rs)
	var xmin, xmax, ymax = math.Inf(1), math.Inf(-1), 0.0
	any := false
	for _, ps := range pts {
		for _, q := range ps {
			any = true
			xmin, xmax = math.Min(xmin, q.x), math.Max(xmax, q.x)
			ymax = math.Max(ymax, q.y)
		}
	}
	if !any {
		return "", false
	}
	const w, h, left, right, top, bottom = 640.0, 400.0, 70.0, 20.0, 40.0, 60.0
	lx0, lx1 := math.Floor(math.Log10(xmin)), math.Ceil(math.Log10(xmax))
	if lx1 == lx0 {
		lx1++
	}
	ytop := niceCeil(ymax * 1.1)
	if ytop == 0 {
		ytop = 1
	}
	sx := func(x float64) float64 { return left + (math.Log10(x)-lx0)/(lx1-lx0)*(w-left-right) }
	sy := func(y float64) float64 { return h - bottom - y/ytop*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="22" text-anchor="middle" font-size="14">%s</text>`+"\n", w/2, esc(p.title))
	// Axes and grid.
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>`+"\n", left, top, left, h-bottom)
	for e := lx0; e <= lx1; e++ {
		x := sx(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#ddd"/>`+"\n", x, top, x, h-bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n", x, h-bottom+16, strconv.FormatFloat(math.Pow(10, e), 'f', -1, 64))
	}
	for i := 0; i <= 5; i++ {
		v := ytop * float64(i) / 5
		y := sy(v)
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, w-right, y)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, strconv.FormatFloat(v, 'g', 3, 64))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s (log scale)</text>`+"\n", (left+w-right)/2, h-18, esc(p.xLabel))
	fmt.Fprintf(&b, `<text x="16" y="%g" text-anchor="middle" transform="rotate(-90 16 %g)">%s</text>`+"\n", (top+h-bottom)/2, (top+h-bottom)/2, esc(p.yLabel))
	for i, ps := range pts {
		if len(ps) == 0 {
			continue
		}
		c := colours[i%len(colours)]
		var path []string
		for _, q := range ps {
			path = append(path, fmt.Sprintf("%.1f,%.1f", sx(q.x), sy(q.y)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(path, " "))
		for _, q := range ps {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%g: %.4g</title></circle>`+"\n", sx(q.x), sy(q.y), c, q.x, q.y)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s">%.3g</text>`+"\n", sx(q.x)+5, sy(q.y)-5, c, q.y)
		}
		ly := top + 14 + float64(i)*16
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"/>`+"\n", left+12, ly-4, left+32, ly-4, c)
		fmt.Fprintf(&b, `<text x="%g" y="%g">%s</text>`+"\n", left+38, ly, esc(p.series[i].Label))
	}
	b.WriteString("</svg>\n")
	return b.String(), true
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
