package bench

import (
	"strings"
	"testing"
	"time"
)

func TestWriteReport(t *testing.T) {
	clone := &Comparison{Section: 1, Title: "Clone", What: "How.", Unit: "s", Reference: "OpenSSH", ServerSide: true}
	clone.Peer("gitfleet").Runs = []Run{{Value: 1, CPU: time.Second, PeakRSS: 2 << 20}, {Value: 3, CPU: 3 * time.Second, PeakRSS: 4 << 20}}
	clone.Peer("OpenSSH").Runs = []Run{{Value: 4, CPU: time.Second, PeakRSS: 1 << 20}, {Value: 4, CPU: time.Second, PeakRSS: 1 << 20, Failed: 1}}
	clone.Peer("file://").Runs = []Run{{Value: 0.5}, {Value: 0.7}}
	single := &Comparison{Section: 6, Title: "Propagation", What: "Pushes.", Unit: "ms", Notes: []string{"p99 9 ms."}}
	single.Peer("gitfleet mirror").Runs = []Run{{Value: 5}, {Value: 9}}
	m := Machine{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Cores: 2, Command: "bench/run -quick", Mode: "quick", Rounds: 2,
		Duration: 90 * time.Second, Environment: []string{"A note."}}
	var b strings.Builder
	if err := WriteReport(&b, m, []string{"Headline one."}, []*Comparison{clone, single}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Written by `bench/run -quick` on 2026-01-02 03:04 UTC (quick mode, 2 interleaved rounds per comparison, 1m30s in total)",
		"| CPU cores | 2 |",
		"| memory | unknown |",
		"- A note.",
		"- Headline one.",
		"## 1. Clone",
		"| peer | median (s, lower is better) | min – max | ratio to OpenSSH | server CPU per run (median) | server peak memory | failures |",
		"| gitfleet | 2.00 | 1.00 – 3.00 | 0.50x | 2.00 s | 4.0 MiB | 0 |",
		"| OpenSSH | 4.00 | 4.00 – 4.00 | 1.00x | 1.00 s | 1.0 MiB | 1 |",
		"| file:// | 0.6 | 0.5 – 0.7 | 0.15x | – | – | 0 |",
		"## 6. Propagation",
		"| peer | median (ms, lower is better) | min – max | failures |\n|---|---|---|---|\n| gitfleet mirror | 7.00 | 5.00 – 9.00 | 0 |",
		"- p99 9 ms.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
