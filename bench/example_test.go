package bench_test

import (
	"fmt"

	"github.com/gitfleet/gitfleet/bench"
)

func ExamplePercentile() {
	rtts := []float64{120, 95, 101, 99, 98, 97, 250, 100, 96, 102} // microseconds
	fmt.Println("p50:", bench.Percentile(rtts, 50))
	fmt.Println("p99:", bench.Percentile(rtts, 99))
	fmt.Println("median:", bench.Median(rtts))
	// Output:
	// p50: 99
	// p99: 250
	// median: 99.5
}

func ExampleRatio() {
	gitfleet, openssh := 1.2, 4.8 // seconds per clone
	fmt.Printf("%.2fx\n", bench.Ratio(gitfleet, openssh))
	// Output: 0.25x
}
