package bench

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// The process probes read /proc: their test runs on Linux.

// TestProbeSeesChildren: the CPU time of a child that the measured process
// waited for, and the memory of a living child, are counted.
func TestProbeSeesChildren(t *testing.T) {
	// sh runs a busy child to completion, then a sleeping child.
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	p := StartProbe(cmd.Process.Pid, 5*time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	for len(tree(cmd.Process.Pid)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the sleeping child never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cpu, peak := p.Stop()
	if cpu <= 0 {
		t.Errorf("cpu = %v, want > 0", cpu)
	}
	own, err := ProcessRSS(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if peak <= own {
		t.Errorf("peak %d not above the shell's own %d: the child was not counted", peak, own)
	}
	if n, err := OpenFDs(os.Getpid()); err != nil || n < 3 {
		t.Errorf("OpenFDs = %d, %v", n, err)
	}
}
