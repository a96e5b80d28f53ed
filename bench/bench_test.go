//go:build bench

package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// The flags bench/run passes after -args.
var (
	quickFlag  = flag.Bool("quick", false, "fewer rounds and smaller loads (under 3 minutes on 2 cores)")
	outFlag    = flag.String("out", "", "write the report (BENCHMARKS.md) to this file")
	onlyFlag   = flag.String("only", "", "run only these comparisons (comma-separated numbers 1-11)")
	roundsFlag = flag.Int("rounds", 0, "interleaved rounds per comparison (0: 5, or 3 with -quick)")
	cmdFlag    = flag.String("command", "bench/run", "the reproducing command written into the report")
	budgetFlag = flag.Duration("budget", 0, "time budget: past half of it, comparisons run fewer rounds (0: 14m, or 2m40s with -quick)")
)

// sampleEvery is the probe's memory sampling interval.
const sampleEvery = 20 * time.Millisecond

// opTimeout bounds every single git operation or network exchange.
const opTimeout = 5 * time.Minute

// env is what every comparison shares.
type env struct {
	t          *testing.T
	quick      bool
	rounds     int
	start      time.Time
	budget     time.Duration
	reduced    bool // scaled has cut rounds at least once
	serverBin  string
	portfwdBin string
	smallSrc   string // source repositories (bare), never modified
	mediumSrc  string
	mediumDesc string
	notes      []string
}

// contender is one peer of a comparison as the runner drives it.
type contender struct {
	name string
	pid  func() int // the server process to measure; nil or 0: none
	// run performs one measured run and returns its figure and the number of
	// operations that failed.
	run func() (value float64, failed int, err error)
}

// scaled returns n, or fewer (at least 2, or n when smaller) once more than
// half of the time budget is spent, and at most 2 past three quarters: the
// later comparisons then still finish within the budget.
func (e *env) scaled(n int) int {
	spent := time.Since(e.start)
	k := n
	switch {
	case spent > e.budget*3/4:
		k = min(n, 2)
	case spent > e.budget/2:
		k = min(n, max(2, (n+1)/2))
	}
	if k < n && !e.reduced {
		e.reduced = true
		e.notes = append(e.notes, fmt.Sprintf("To stay within the %v budget, comparisons that started after %v ran fewer rounds or operations than "+
			"the rest; their tables say how many.", e.budget, spent.Round(time.Second)))
	}
	return k
}

// interleave runs one unmeasured warm-up of each contender unless noWarmup
// gives the reason not to, then rounds of A B C ..., measuring the server
// process of each run.
func (e *env) interleave(c *Comparison, rounds int, noWarmup string, cs ...contender) {
	e.t.Helper()
	rounds = e.scaled(rounds)
	if rounds != e.rounds {
		c.Notes = append(c.Notes, fmt.Sprintf("%d rounds.", rounds))
	}
	for _, x := range cs {
		c.Peer(x.name)
		if noWarmup != "" {
			continue
		}
		if _, _, err := x.run(); err != nil {
			e.t.Fatalf("%s: warm-up of %s: %v", c.Title, x.name, err)
		}
	}
	if noWarmup != "" {
		c.Notes = append(c.Notes, "No warm-up run: "+noWarmup)
	}
	for r := 0; r < rounds; r++ {
		for _, x := range cs {
			pid := 0
			if x.pid != nil {
				pid = x.pid()
			}
			p := StartProbe(pid, sampleEvery)
			v, failed, err := x.run()
			cpu, peak := p.Stop()
			if err != nil {
				e.t.Fatalf("%s: %s, round %d: %v", c.Title, x.name, r+1, err)
			}
			c.Peer(x.name).Runs = append(c.Peer(x.name).Runs, Run{Value: v, CPU: cpu, PeakRSS: peak, Failed: failed})
		}
	}
	for _, p := range c.Peers {
		lo, hi := MinMax(p.Values())
		e.t.Logf("%s: %-22s median %s %s (%s – %s), server CPU %v, peak %.1f MiB, failed %d",
			c.Title, p.Name, num(p.Median()), c.Unit, num(lo), num(hi), p.MedianCPU().Round(time.Millisecond),
			float64(p.MaxRSS())/(1<<20), p.Failed())
	}
}

// selected reports whether comparison n is to run.
func selected(n int) bool {
	if *onlyFlag == "" {
		return true
	}
	return slices.Contains(strings.Split(*onlyFlag, ","), strconv.Itoa(n))
}

// TestBench runs every comparison and writes the report. It is what bench/run
// runs; see doc.go.
func TestBench(t *testing.T) {
	start := time.Now()
	m := DescribeMachine()
	e := &env{t: t, quick: *quickFlag, rounds: *roundsFlag, start: start, budget: *budgetFlag}
	if e.rounds <= 0 {
		e.rounds = 5
		if e.quick {
			e.rounds = 3
		}
	}
	if e.budget <= 0 {
		e.budget = 14 * time.Minute
		if e.quick {
			e.budget = 160 * time.Second
		}
	}
	for _, prog := range []string{"git", "ssh", "sshd", "haproxy"} {
		testutil.Require(t, prog)
	}
	if selected(1) || selected(2) || selected(3) || selected(4) || selected(6) || selected(8) || selected(9) || selected(10) || selected(11) {
		t.Log("building examples/server")
		e.serverBin = testutil.BuildBinary(t, "./examples/server")
		e.prepareRepos()
	}
	if selected(5) {
		t.Log("building examples/portfwd")
		e.portfwdBin = testutil.BuildBinary(t, "./examples/portfwd")
	}
	t.Logf("setup done in %v", time.Since(start).Round(time.Second))

	var cs []*Comparison
	var headline []string
	sections := map[*Comparison]int{}
	add := func(n int, more ...*Comparison) {
		for _, c := range more {
			sections[c] = n
			cs = append(cs, c)
		}
	}
	var g *gitSetup
	if selected(1) || selected(2) || selected(3) || selected(6) || selected(8) || selected(9) || selected(10) || selected(11) {
		g = e.startGit()
		t.Logf("servers and repositories ready at %v", time.Since(start).Round(time.Second))
	}
	if selected(1) {
		small, medium := e.benchClone(g, "small"), e.benchClone(g, "medium")
		add(1, small, medium)
		headline = append(headline,
			fmt.Sprintf("Clone over SSH, medium repository: gitfleet takes %s of OpenSSH's wall time (%s of the `file://` floor).",
				ratio(medium.Ratio("gitfleet")), ratio(Ratio(medium.Peer("gitfleet").Median(), medium.Peer("file://").Median()))))
	}
	if selected(2) {
		c := e.benchLsRemote(g)
		add(2, c)
		headline = append(headline, fmt.Sprintf("`git ls-remote`, a new connection each: gitfleet's rate is %s OpenSSH's.", ratio(c.Ratio("gitfleet"))))
	}
	if selected(3) {
		c := e.benchConcurrent(g)
		add(3, c)
		cpu := 0.0
		if os := c.Peer("OpenSSH").MedianCPU(); os > 0 {
			cpu = float64(c.Peer("gitfleet").MedianCPU()) / float64(os)
		}
		headline = append(headline, fmt.Sprintf("Clone storm, 32 concurrent clones: gitfleet takes %s of OpenSSH's wall time and %s of its server CPU, with %d failures.",
			ratio(c.Ratio("gitfleet")), ratio(cpu), c.Peer("gitfleet").Failed()))
	}
	if selected(11) {
		c := e.benchNoopFetch(g)
		add(11, c)
		per := func(name string) float64 {
			if p := c.Peer(name); p != nil {
				return float64(p.MedianCPU().Microseconds()) / 1000 / 64
			}
			return 0
		}
		headline = append(headline, fmt.Sprintf("64 concurrent no-op fetches (CI polls): gitfleet's server CPU %s ms per fetch, OpenSSH's %s ms.",
			num(per("gitfleet")), num(per("OpenSSH"))))
	}
	if selected(4) {
		c := e.benchSidecar()
		add(4, c)
		if r := c.Ratio("through the sidecar"); r > 0 {
			headline = append(headline, fmt.Sprintf("Clone through the mesh sidecar: %s of the in-process store's wall time.", ratio(r)))
		}
	}
	if selected(5) {
		pcs := e.benchProxies()
		add(5, pcs...)
		headline = append(headline, fmt.Sprintf("portfwd against HAProxy: bulk throughput %s, connection rate %s, p99 latency %s, memory per idle connection %s.",
			ratio(pcs[0].Ratio("portfwd")), ratio(pcs[1].Ratio("portfwd")), ratio(pcs[2].Ratio("portfwd")), ratio(pcs[3].Ratio("portfwd"))))
	}
	if selected(6) {
		sync, prop := e.benchMirror(g)
		add(6, sync, prop)
		headline = append(headline, fmt.Sprintf("Mirror initial sync: %s of `git clone --mirror` over OpenSSH; push-to-mirror propagation p50 %s ms, p99 %s ms.",
			ratio(sync.Ratio("gitfleet mirror")), num(Percentile(prop.Peers[0].Values(), 50)), num(Percentile(prop.Peers[0].Values(), 99))))
	}
	if selected(7) {
		c := e.benchProps()
		add(7, c)
		headline = append(headline, fmt.Sprintf("Loading a 10,000-line properties file: props takes %s of magiconair's time.", ratio(c.Ratio("props"))))
	}

	if selected(8) {
		rcs := e.benchManyRefs(g)
		add(8, rcs...)
		var parts []string
		for _, c := range rcs {
			parts = append(parts, fmt.Sprintf("%s of `file://` (%s)", ratio(Ratio(c.Peer("gitfleet").Median(), c.Peer("file://").Median())),
				strings.TrimSuffix(strings.TrimPrefix(c.Title, "Push of "), " without --atomic")))
		}
		headline = append(headline, "Push of many refs without --atomic: gitfleet takes "+strings.Join(parts, ", ")+".")
	}

	if selected(9) {
		lcs := e.benchLFS(g)
		add(9, lcs...)
		headline = append(headline, fmt.Sprintf("Git LFS over SSH against scp: upload %s, download %s of scp's throughput.",
			ratio(lcs[0].Ratio("gitfleet (git-lfs)")), ratio(lcs[1].Ratio("gitfleet (git-lfs)"))))
	}

	if selected(10) {
		storm, vis := e.benchFarm(g)
		add(10, storm, vis)
		v := vis.Peers[0].Values()
		headline = append(headline, fmt.Sprintf("Mirror farm of three behind portfwd: a 64-clone storm takes %s of one mirror's wall time "+
			"(%d failures); push-to-farm visibility p50 %s ms, p99 %s ms.",
			ratio(storm.Ratio("farm of 3 (portfwd)")), storm.Peer("farm of 3 (portfwd)").Failed(), num(Percentile(v, 50)), num(Percentile(v, 99))))
	}

	for _, c := range cs {
		c.Section = sections[c]
	}
	m.LoadEnd = LoadAverage()
	m.Duration = time.Since(start)
	m.Rounds = e.rounds
	m.Mode = "full"
	m.Command = *cmdFlag
	if e.quick {
		m.Mode = "quick"
	}
	m.RepoMedium = e.mediumDesc
	m.Environment = e.notes
	if l := loadOne(m.LoadStart); l > float64(m.Cores) {
		m.Environment = append(m.Environment, fmt.Sprintf("The machine was busy when the run started (load average %s on %d cores): "+
			"absolute figures are slower than on an idle machine; ratios between interleaved peers are the robust part.", m.LoadStart, m.Cores))
	}
	var buf bytes.Buffer
	if err := WriteReport(&buf, m, headline, cs); err != nil {
		t.Fatal(err)
	}
	if *outFlag != "" {
		if err := os.WriteFile(*outFlag, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", *outFlag)
	} else {
		t.Log("\n" + buf.String())
	}
	t.Logf("total %v", time.Since(start).Round(time.Second))
}

func loadOne(s string) float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// prepareRepos finds or builds the small and medium source repositories.
// GITFLEET_BENCH_REPO replaces the medium one with the user's own repository.
func (e *env) prepareRepos() {
	e.t.Helper()
	e.t.Log("preparing repositories (built once per machine, then cached)")
	e.smallSrc = testutil.CachedRepo(e.t, testutil.SmallRepo)
	if p := os.Getenv("GITFLEET_BENCH_REPO"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			e.t.Fatal(err)
		}
		if out, err := exec.Command("git", "-C", abs, "rev-parse", "--git-dir").CombinedOutput(); err != nil {
			e.t.Fatalf("GITFLEET_BENCH_REPO=%s is not a git repository: %s", p, out)
		}
		e.mediumSrc = abs
		e.mediumDesc = "GITFLEET_BENCH_REPO=" + abs
	} else {
		e.mediumSrc = testutil.CachedRepo(e.t, testutil.Preset40k)
		e.mediumDesc = "generated, testutil.Preset40k"
	}
	count, _ := exec.Command("git", "-C", e.mediumSrc, "count-objects", "-v").Output()
	for _, line := range strings.Split(string(count), "\n") {
		if strings.HasPrefix(line, "in-pack:") || strings.HasPrefix(line, "size-pack:") {
			e.mediumDesc += ", " + strings.TrimSpace(line)
		}
	}
	if strings.Contains(e.mediumDesc, "size-pack") {
		e.mediumDesc += " KiB"
	}
}

// runGit runs git with env in dir and returns an error carrying its stderr.
func runGit(env []string, dir string, args ...string) error {
	_, err := runGitCPU(env, dir, args...)
	return err
}

// runGitCPU is runGit that also returns the CPU time git used, with the
// children it waited for (index-pack, the ssh client, a local upload-pack).
func runGitCPU(env []string, dir string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return cpu, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return cpu, nil
}

// timed runs f and returns the seconds it took.
func timed(f func() error) (float64, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0).Seconds(), err
}
