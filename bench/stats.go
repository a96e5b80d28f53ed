package bench

import (
	"math"
	"slices"
	"time"
)

// Run is one measured run of one peer.
type Run struct {
	Value   float64       // the figure, in the comparison's unit
	CPU     time.Duration // server-side CPU time of the run (0: no server process)
	PeakRSS int64         // server-side peak resident memory during the run, bytes
	Failed  int           // operations that failed during the run
}

// Peer is one side of a comparison and its runs, in the order they were made.
type Peer struct {
	Name string
	Runs []Run
}

// Values returns the runs' figures.
func (p *Peer) Values() []float64 {
	out := make([]float64, len(p.Runs))
	for i, r := range p.Runs {
		out[i] = r.Value
	}
	return out
}

// Median is the median of the runs' figures.
func (p *Peer) Median() float64 { return Median(p.Values()) }

// MedianCPU is the median server-side CPU time per run.
func (p *Peer) MedianCPU() time.Duration {
	v := make([]float64, len(p.Runs))
	for i, r := range p.Runs {
		v[i] = float64(r.CPU)
	}
	return time.Duration(Median(v))
}

// MaxRSS is the highest server-side peak memory over the runs.
func (p *Peer) MaxRSS() int64 {
	var m int64
	for _, r := range p.Runs {
		m = max(m, r.PeakRSS)
	}
	return m
}

// Failed is the number of failed operations over all runs.
func (p *Peer) Failed() int {
	n := 0
	for _, r := range p.Runs {
		n += r.Failed
	}
	return n
}

// Median returns the median of v (the mean of the two middle values for an
// even count), or NaN for no values.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MinMax returns the smallest and largest of v (NaN, NaN for no values).
func MinMax(v []float64) (lo, hi float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	return slices.Min(v), slices.Max(v)
}

// Percentile returns the p-th percentile (0 < p <= 100) of v by the
// nearest-rank method: the smallest value that at least p% of the values do
// not exceed. NaN for no values.
func Percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// Ratio is a/b, or NaN when either is not a positive finite number.
func Ratio(a, b float64) float64 {
	if !(a > 0) || !(b > 0) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return math.NaN()
	}
	return a / b
}
