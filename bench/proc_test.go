package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		pid, ppid  int
		cpu        time.Duration
		rssPages   int64
		bad        bool
	}{
		{
			name: "plain",
			line: "42 (git) S 7 42 42 0 -1 4194560 100 0 0 0 150 50 20 30 20 0 1 0 100 1000000 250 18446744073709551615",
			pid:  42, ppid: 7, cpu: 2500 * time.Millisecond, rssPages: 250,
		},
		{
			name: "name with spaces and parentheses",
			line: "9 (a) b (c) R 1 9 9 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100 1000 5 0",
			pid:  9, ppid: 1, cpu: 100 * time.Millisecond, rssPages: 5,
		},
		{name: "truncated", line: "9 (a) R 1 2 3", bad: true},
		{name: "no name", line: "9 a R 1", bad: true},
		{name: "bad number", line: "9 (a) R x 9 9 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100 1000 5 0", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseStat([]byte(tt.line))
			if tt.bad {
				if err == nil {
					t.Fatalf("no error for %q", tt.line)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.pid != tt.pid || s.ppid != tt.ppid || s.cpu != tt.cpu || s.rss != tt.rssPages*int64(os.Getpagesize()) {
				t.Fatalf("got %+v", s)
			}
		})
	}
}
