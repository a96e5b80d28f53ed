package bench

import (
	"math"
	"testing"
	"time"
)

func TestStatistics(t *testing.T) {
	tests := []struct {
		name           string
		v              []float64
		median, lo, hi float64
		p50, p99       float64
	}{
		{"one", []float64{3}, 3, 3, 3, 3, 3},
		{"odd", []float64{5, 1, 3}, 3, 1, 5, 3, 5},
		{"even", []float64{4, 1, 3, 2}, 2.5, 1, 4, 2, 4},
		{"hundred", seq(100), 50.5, 1, 100, 50, 99},
		{"two hundred", seq(200), 100.5, 1, 200, 100, 198},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := append([]float64(nil), tt.v...)
			if got := Median(tt.v); got != tt.median {
				t.Errorf("Median = %v, want %v", got, tt.median)
			}
			if lo, hi := MinMax(tt.v); lo != tt.lo || hi != tt.hi {
				t.Errorf("MinMax = %v, %v, want %v, %v", lo, hi, tt.lo, tt.hi)
			}
			if got := Percentile(tt.v, 50); got != tt.p50 {
				t.Errorf("p50 = %v, want %v", got, tt.p50)
			}
			if got := Percentile(tt.v, 99); got != tt.p99 {
				t.Errorf("p99 = %v, want %v", got, tt.p99)
			}
			for i := range orig {
				if orig[i] != tt.v[i] {
					t.Fatal("the input was reordered")
				}
			}
		})
	}
	if !math.IsNaN(Median(nil)) || !math.IsNaN(Percentile(nil, 50)) {
		t.Error("no values must give NaN")
	}
}

func seq(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(n - i) // descending, so sorting matters
	}
	return v
}

func TestRatio(t *testing.T) {
	tests := []struct {
		a, b, want float64
	}{
		{1, 2, 0.5},
		{3, 1, 3},
	}
	for _, tt := range tests {
		if got := Ratio(tt.a, tt.b); got != tt.want {
			t.Errorf("Ratio(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	for _, bad := range [][2]float64{{0, 1}, {1, 0}, {math.NaN(), 1}, {math.Inf(1), 1}, {-1, 1}} {
		if got := Ratio(bad[0], bad[1]); !math.IsNaN(got) {
			t.Errorf("Ratio(%v, %v) = %v, want NaN", bad[0], bad[1], got)
		}
	}
}

func TestPeerSummary(t *testing.T) {
	p := &Peer{Name: "x", Runs: []Run{
		{Value: 3, CPU: 300 * time.Millisecond, PeakRSS: 10, Failed: 1},
		{Value: 1, CPU: 100 * time.Millisecond, PeakRSS: 30},
		{Value: 2, CPU: 200 * time.Millisecond, PeakRSS: 20, Failed: 2},
	}}
	if p.Median() != 2 || p.MedianCPU() != 200*time.Millisecond || p.MaxRSS() != 30 || p.Failed() != 3 {
		t.Fatalf("median %v cpu %v rss %v failed %v", p.Median(), p.MedianCPU(), p.MaxRSS(), p.Failed())
	}
}
