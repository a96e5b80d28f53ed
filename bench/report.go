package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Comparison is one table of BENCHMARKS.md: peers measured side by side,
// interleaved, on the same figure.
type Comparison struct {
	// Section is the comparison's number in the list of comparisons (1-10); several
	// tables can share one.
	Section int
	Title   string
	What    string // how it is measured, one paragraph
	Unit    string // of Run.Value: "s", "ms", "ops/s", "MB/s", "KiB"
	// HigherIsBetter says which way the figure points (rates, throughput).
	HigherIsBetter bool
	// Reference names the peer the ratios divide by; empty for a table
	// without ratios (a single peer).
	Reference string
	// ServerSide says whether the CPU and memory columns mean anything (a
	// server process was measured).
	ServerSide bool
	Peers      []*Peer
	Notes      []string
}

// Peer returns the peer called name, adding it when missing.
func (c *Comparison) Peer(name string) *Peer {
	for _, p := range c.Peers {
		if p.Name == name {
			return p
		}
	}
	p := &Peer{Name: name}
	c.Peers = append(c.Peers, p)
	return p
}

// Ratio is the median of peer divided by the median of the reference.
func (c *Comparison) Ratio(peer string) float64 {
	var a, b float64 = math.NaN(), math.NaN()
	for _, p := range c.Peers {
		if p.Name == peer {
			a = p.Median()
		}
		if p.Name == c.Reference {
			b = p.Median()
		}
	}
	return Ratio(a, b)
}

// Machine describes where the figures were taken.
type Machine struct {
	Date        time.Time
	Cores       int
	CPU         string
	Memory      string
	Kernel      string
	Go          string
	Git         string
	OpenSSH     string
	HAProxy     string
	LoadStart   string // load averages when the run started
	LoadEnd     string // and when it ended
	Duration    time.Duration
	Mode        string // "full" or "quick"
	Command     string // the reproducing command
	RepoMedium  string // what the medium repository is
	Rounds      int
	Environment []string // notes about the run (overrides, load)
}

// DescribeMachine fills in what can be read from the system now.
func DescribeMachine() Machine {
	m := Machine{Date: time.Now().UTC(), Cores: runtime.NumCPU(), Go: runtime.Version()}
	m.CPU = firstMatch("/proc/cpuinfo", "model name")
	if mem := firstMatch("/proc/meminfo", "MemTotal"); mem != "" {
		var kb int64
		fmt.Sscanf(mem, "%d", &kb)
		m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.Git = firstLine("git", "--version")
	m.OpenSSH = firstLine("ssh", "-V")
	m.HAProxy = firstLine("haproxy", "-v")
	if m.HAProxy == "" {
		m.HAProxy = firstLine("/usr/sbin/haproxy", "-v")
	}
	m.LoadStart = LoadAverage()
	return m
}

// LoadAverage returns the 1, 5 and 15 minute load averages.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func firstMatch(file, prefix string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			_, v, _ := strings.Cut(line, ":")
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func firstLine(prog string, args ...string) string {
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// WriteReport writes BENCHMARKS.md: the machine, the headline ratios, then one
// table per comparison.
func WriteReport(w io.Writer, m Machine, headline []string, cs []*Comparison) error {
	var b strings.Builder
	b.WriteString("# gitfleet benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `%s` on %s (%s mode, %d interleaved rounds per comparison, %s in total). "+
		"This file is generated: run the command again to refresh it, do not edit it.\n\n",
		m.Command, m.Date.Format("2006-01-02 15:04 MST"), m.Mode, m.Rounds, m.Duration.Round(time.Second))
	b.WriteString("## Machine\n\n| | |\n|---|---|\n")
	rows := [][2]string{
		{"CPU cores", fmt.Sprint(m.Cores)}, {"CPU", m.CPU}, {"memory", m.Memory}, {"kernel", m.Kernel},
		{"Go", m.Go}, {"git", m.Git}, {"OpenSSH", m.OpenSSH}, {"HAProxy", m.HAProxy},
		{"load average at start (1, 5, 15 min)", m.LoadStart}, {"load average at end", m.LoadEnd},
		{"medium repository", m.RepoMedium},
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |\n", r[0], cell(r[1]))
	}
	b.WriteString("\n")
	for _, e := range m.Environment {
		fmt.Fprintf(&b, "- %s\n", e)
	}
	if len(m.Environment) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("Every comparison runs its peers interleaved (A B C A B C ...) after one unmeasured warm-up run of each (unless its table says otherwise), " +
		"and reports the median and the range (min – max) over the rounds. A ratio is the peer's median divided by the " +
		"reference's median: below 1 means less time (or less of the figure), above 1 means more. " +
		"Server CPU is the user + system time of the server process and every process it started during one run " +
		"(read from /proc/<pid>/stat, children included once waited for); server memory is the highest summed " +
		"resident memory of the server's process tree, sampled every 20 ms.\n\n")
	if len(headline) > 0 {
		b.WriteString("## Headline\n\n")
		for _, h := range headline {
			fmt.Fprintf(&b, "- %s\n", h)
		}
		b.WriteString("\n")
	}
	for _, c := range cs {
		writeComparison(&b, c)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeComparison(b *strings.Builder, c *Comparison) {
	fmt.Fprintf(b, "## %d. %s\n\n%s\n\n", c.Section, c.Title, c.What)
	better := "lower is better"
	if c.HigherIsBetter {
		better = "higher is better"
	}
	fmt.Fprintf(b, "| peer | median (%s, %s) | min – max |", c.Unit, better)
	if c.Reference != "" {
		fmt.Fprintf(b, " ratio to %s |", c.Reference)
	}
	if c.ServerSide {
		b.WriteString(" server CPU per run (median) | server peak memory |")
	}
	b.WriteString(" failures |\n|---|---|---|")
	if c.Reference != "" {
		b.WriteString("---|")
	}
	if c.ServerSide {
		b.WriteString("---|---|")
	}
	b.WriteString("---|\n")
	for _, p := range c.Peers {
		lo, hi := MinMax(p.Values())
		fmt.Fprintf(b, "| %s | %s | %s – %s |", p.Name, num(p.Median()), num(lo), num(hi))
		if c.Reference != "" {
			fmt.Fprintf(b, " %s |", ratio(c.Ratio(p.Name)))
		}
		if c.ServerSide {
			cpu, rss := "–", "–"
			if p.MaxRSS() > 0 {
				cpu = fmt.Sprintf("%.2f s", p.MedianCPU().Seconds())
				rss = fmt.Sprintf("%.1f MiB", float64(p.MaxRSS())/(1<<20))
			}
			fmt.Fprintf(b, " %s | %s |", cpu, rss)
		}
		fmt.Fprintf(b, " %d |\n", p.Failed())
	}
	b.WriteString("\n")
	for _, note := range c.Notes {
		fmt.Fprintf(b, "- %s\n", note)
	}
	if len(c.Notes) > 0 {
		b.WriteString("\n")
	}
}

func cell(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}

// num formats a figure with three significant digits.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func ratio(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2fx", v)
}
