//go:build bench

package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// testBinary compiles the tests of pkg (relative to the module root) once.
func (e *env) testBinary(pkg string) string {
	e.t.Helper()
	out := filepath.Join(e.t.TempDir(), filepath.Base(pkg)+".test")
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command("go", "test", "-c", "-o", out, pkg)
	cmd.Dir = strings.TrimSpace(string(root))
	if b, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("go test -c %s: %v\n%s", pkg, err, b)
	}
	return out
}

// goBench runs one Go benchmark of a compiled test binary and returns its
// metrics by unit ("ns/op", "sidecar-s/clone", ...) from the last result line.
func goBench(bin, dir, pattern, benchtime string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^$", "-test.bench", pattern, "-test.benchtime", benchtime, "-test.count", "1")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -test.bench %s: %v\n%s", filepath.Base(bin), pattern, err, out.String())
	}
	metrics := map[string]float64{}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		// Name, iterations, then value/unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				metrics[f[i+1]] = v
			}
		}
	}
	if len(metrics) == 0 {
		return nil, fmt.Errorf("%s -test.bench %s: no result line\n%s", filepath.Base(bin), pattern, out.String())
	}
	return metrics, nil
}

// sidecarComparison runs mesh's own clone benchmark, which interleaves an
// in-process Store.ServeGit and the same store behind the sidecar Server and
// Client within each iteration, once per round.
func (e *env) sidecarComparison(c *Comparison) {
	bin := e.testBinary("./mesh")
	dir := filepath.Dir(bin)
	c.What += " Measured by the mesh package's own benchmark (`go test -run '^$' -bench BenchmarkClone -benchtime 1x ./mesh`), " +
		"which serves one store both ways in one process and clones with the real git, alternating within each iteration; " +
		"bench/run runs it once per round. The store runs in the benchmark's own process, so no server CPU or memory is reported here."
	c.ServerSide = false
	var missing bool
	rounds := e.rounds
	if e.quick {
		rounds = 2
	}
	rounds = e.scaled(rounds)
	if rounds != e.rounds {
		c.Notes = append(c.Notes, fmt.Sprintf("%d rounds.", rounds))
	}
	for r := 0; r < rounds; r++ {
		m, err := goBench(bin, dir, "^BenchmarkClone$", "1x")
		if err != nil {
			e.t.Fatal(err)
		}
		c.Peer("in-process store").Runs = append(c.Peer("in-process store").Runs, Run{Value: m["servegit-s/clone"]})
		c.Peer("file://").Runs = append(c.Peer("file://").Runs, Run{Value: m["file-s/clone"]})
		if v, ok := m["sidecar-s/clone"]; ok {
			c.Peer("through the sidecar").Runs = append(c.Peer("through the sidecar").Runs, Run{Value: v})
		} else {
			missing = true
		}
	}
	if missing {
		c.Notes = append(c.Notes, "The sidecar path is missing from this run: the mesh benchmark reported no sidecar figure "+
			"(the sidecar was not part of this build).")
	}
	for _, p := range c.Peers {
		e.t.Logf("%s: %s median %s s", c.Title, p.Name, num(p.Median()))
	}
}

// benchProps is comparison 7: props' own load benchmark against magiconair,
// the two alternating, one benchmark run each per round.
func (e *env) benchProps() *Comparison {
	bin := e.testBinary("./props")
	dir := filepath.Dir(bin)
	c := &Comparison{
		Title: "`props` load vs magiconair/properties",
		What: "Parsing the same 10,000-line bitbucket.properties-style file (`go test -run '^$' -bench 'BenchmarkLoad/^(props|magiconair)$' ./props`): " +
			"gitfleet's Java-exact reader against magiconair's loader with expansion disabled. bench/run alternates the two " +
			"sub-benchmarks, one benchmark run each per round (1 s; 0.3 s with -quick). Figure: milliseconds per load.",
		Unit: "ms", Reference: "magiconair",
	}
	benchtime := "1s"
	if e.quick {
		benchtime = "300ms"
	}
	rounds := e.scaled(e.rounds)
	if rounds != e.rounds {
		c.Notes = append(c.Notes, fmt.Sprintf("%d rounds.", rounds))
	}
	for r := 0; r < rounds; r++ {
		for _, name := range []string{"props", "magiconair"} {
			m, err := goBench(bin, dir, "^BenchmarkLoad$/^"+name+"$", benchtime)
			if err != nil {
				e.t.Fatal(err)
			}
			c.Peer(name).Runs = append(c.Peer(name).Runs, Run{Value: m["ns/op"] / 1e6})
		}
	}
	for _, p := range c.Peers {
		e.t.Logf("%s: %s median %s ms", c.Title, p.Name, num(p.Median()))
	}
	return c
}
