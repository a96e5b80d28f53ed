package mesh

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

var (
	id1 = strings.Repeat("1", 40)
	id2 = strings.Repeat("2", 40)
	id3 = strings.Repeat("3", 40)
)

func TestAdvScanner(t *testing.T) {
	v0 := pkt(id1+" HEAD\x00multi_ack side-band-64k\n") + pkt(id1+" refs/heads/main\n") + "0000"
	v1 := pkt("version 1\n") + v0
	caps := pkt("version 2\n") + pkt("agent=git/2.39.5\n") + pkt("ls-refs=unborn\n") + "0000"
	lsrefs := pkt(id1+" refs/heads/main\n") + pkt(id2+" refs/tags/v1 peeled:"+id3+"\n") + "0000"
	cases := []struct {
		name string
		in   string
		end  int // -1: does not end
	}{
		{"v0", v0 + "0008NAK\n", len(v0)},
		{"v0 empty repo", pkt(ZeroID+" capabilities^{}\x00ofs-delta\n") + "0000", -2},
		{"v1", v1 + "more", len(v1)},
		{"v2 ls-refs", caps + lsrefs + "0001rest", len(caps + lsrefs)},
		{"v2 capabilities only", caps, -1},
		{"v2 delim inside", caps + pkt("acknowledgments\n") + "0001" + pkt("packfile\n") + "0000", len(caps + pkt("acknowledgments\n") + "0001" + pkt("packfile\n") + "0000")},
		{"not pkt-line", "zzzz" + v0, 4},
		{"bad length", "0003" + v0, 4},
		{"truncated", v0[:10], -1},
		{"empty pkt", "0004" + "0000", 8},
	}
	for _, c := range cases {
		want := c.end
		if want == -2 {
			want = len(c.in)
		}
		t.Run(c.name, func(t *testing.T) {
			for _, chunk := range []int{1, 3, 7, 64, 1 << 20} {
				var a advScanner
				consumed, at := 0, -1
				for off := 0; off < len(c.in); off += chunk {
					p := []byte(c.in[off:min(off+chunk, len(c.in))])
					n, ended := a.feed(p)
					consumed += n
					if ended {
						at = consumed
						break
					}
				}
				if at != want {
					t.Fatalf("chunk %d: advertisement ends at %d, want %d", chunk, at, want)
				}
			}
		})
	}
}

func TestAdvWriterReleasesOnce(t *testing.T) {
	var out bytes.Buffer
	released := 0
	w := &advWriter{w: &out, release: func() { released++ }}
	in := pkt("x\n") + "0000" + "tail data"
	for i := 0; i < len(in); i += 3 {
		if _, err := w.Write([]byte(in[i:min(i+3, len(in))])); err != nil {
			t.Fatal(err)
		}
		if i+3 < len(pkt("x\n"))+4 && released != 0 {
			t.Fatalf("released before the flush-pkt was written (at %d)", i)
		}
	}
	w.close()
	if released != 1 || out.String() != in {
		t.Fatalf("released %d times, wrote %q", released, out.String())
	}
}

func FuzzAdvScanner(f *testing.F) {
	f.Add([]byte(pkt("version 2\n")+"0000"+pkt("a\n")+"0000"), uint8(3))
	f.Add([]byte(pkt(id1+" HEAD\x00caps\n")+"0000"), uint8(1))
	f.Add([]byte("0001000200030004"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var whole advScanner
		n1, e1 := whole.feed(data)
		if n1 > len(data) || (!e1 && n1 != len(data)) {
			t.Fatalf("feed consumed %d of %d, ended %v", n1, len(data), e1)
		}
		step := int(chunk%16) + 1
		var parts advScanner
		n2, e2 := 0, false
		for off := 0; off < len(data) && !e2; off += step {
			n, e := parts.feed(data[off:min(off+step, len(data))])
			n2 += n
			e2 = e
		}
		if n1 != n2 || e1 != e2 {
			t.Fatalf("whole: %d %v; in chunks of %d: %d %v", n1, e1, step, n2, e2)
		}
	})
}

func TestParseTransactions(t *testing.T) {
	in := id1 + " " + id2 + " refs/heads/a\n" + id1 + " " + id2 + " HEAD\n.\n" +
		ZeroID + " " + id3 + " refs/tags/t\nbogus line\n" + id2 + " " + ZeroID + " refs/heads/b\n.\n" +
		".\n" + id1 + " " + id3 + " refs/heads/c\n"
	txns, complete := parseTransactions(strings.NewReader(in))
	if complete {
		t.Error("complete = true for input cut inside a transaction")
	}
	want := [][]RefUpdate{
		{{"refs/heads/a", id1, id2}},
		{{"refs/tags/t", ZeroID, id3}, {"refs/heads/b", id2, ZeroID}},
	}
	if fmt.Sprint(txns) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", txns, want)
	}
	if _, complete := parseTransactions(strings.NewReader(in[:strings.Index(in, ".\n.\n")+4])); !complete {
		t.Error("complete = false for whole transactions")
	}
}

func TestResolveTransactions(t *testing.T) {
	z := ZeroID
	cases := []struct {
		name       string
		txns       [][]RefUpdate
		before     map[string]string
		want       [][]RefUpdate
		unresolved bool
	}{
		{"plain", [][]RefUpdate{{{"refs/heads/a", z, id1}}}, nil, [][]RefUpdate{{{"refs/heads/a", z, id1}}}, false},
		{"packed side of a push deletion",
			[][]RefUpdate{{{"refs/heads/a", z, z}}, {{"refs/heads/a", id1, z}, {"refs/heads/b", id1, id2}}}, nil,
			[][]RefUpdate{{{"refs/heads/a", id1, z}, {"refs/heads/b", id1, id2}}}, false},
		{"prune of a loose ref",
			[][]RefUpdate{{{"refs/heads/a", z, z}}, {{"refs/heads/b", id1, id2}}},
			map[string]string{"refs/heads/a": id3, "refs/heads/b": id1},
			[][]RefUpdate{{{"refs/heads/a", id3, z}}, {{"refs/heads/b", id1, id2}}}, false},
		{"prune of packed refs",
			[][]RefUpdate{{{"refs/heads/a", z, z}, {"refs/heads/b", z, z}}, {{"refs/heads/a", z, z}}, {{"refs/heads/b", z, z}}},
			map[string]string{"refs/heads/a": id1, "refs/heads/b": id2},
			[][]RefUpdate{{{"refs/heads/a", id1, z}}, {{"refs/heads/b", id2, z}}}, false},
		{"prune without a snapshot",
			[][]RefUpdate{{{"refs/heads/a", z, z}}}, nil, nil, true},
		{"old value advanced through earlier transactions",
			[][]RefUpdate{{{"refs/heads/a", id1, id2}}, {{"refs/heads/a", z, z}}},
			map[string]string{"refs/heads/a": id1},
			[][]RefUpdate{{{"refs/heads/a", id1, id2}}, {{"refs/heads/a", id2, z}}}, false},
		{"verification only", [][]RefUpdate{{{"refs/heads/a", id1, id1}}}, nil, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, unresolved := resolveTransactions(c.txns, c.before)
			if fmt.Sprint(got) != fmt.Sprint(c.want) || unresolved != c.unresolved {
				t.Fatalf("got %v %v\nwant %v %v", got, unresolved, c.want, c.unresolved)
			}
		})
	}
}

func FuzzParseTransactions(f *testing.F) {
	f.Add([]byte(id1 + " " + id2 + " refs/heads/a\n.\n"))
	f.Add([]byte(ZeroID + " " + ZeroID + " refs/heads/a\n.\n" + id1 + " " + ZeroID + " refs/heads/a\n.\n"))
	f.Add([]byte(".\n.\nx\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		txns, _ := parseTransactions(bytes.NewReader(data))
		for _, txn := range txns {
			if len(txn) == 0 {
				t.Fatal("empty transaction")
			}
			for _, u := range txn {
				if !isObjectID(u.Old) || !isObjectID(u.New) || !strings.HasPrefix(u.Ref, "refs/") || strings.Contains(u.Ref, "\n") {
					t.Fatalf("bad update %+v", u)
				}
			}
		}
		out, _ := resolveTransactions(txns, map[string]string{})
		for _, txn := range out {
			for _, u := range txn {
				if u.Old == u.New {
					t.Fatalf("resolved update without change: %+v", u)
				}
			}
		}
	})
}

func TestParsePackedRefs(t *testing.T) {
	in := "# pack-refs with: peeled fully-peeled sorted \n" + id1 + " refs/heads/main\n" + id2 + " refs/tags/v1\n^" + id3 + "\nnonsense\n" + id3 + " HEAD\n"
	refs, err := parsePackedRefs(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 || refs["refs/heads/main"] != id1 || refs["refs/tags/v1"] != id2 {
		t.Fatalf("got %v", refs)
	}
}

func FuzzParsePackedRefs(f *testing.F) {
	f.Add([]byte("# pack-refs with: peeled\n" + id1 + " refs/heads/main\n^" + id2 + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		refs, _ := parsePackedRefs(bytes.NewReader(data))
		for name, id := range refs {
			if !isObjectID(id) || !strings.HasPrefix(name, "refs/") {
				t.Fatalf("bad ref %q %q", name, id)
			}
		}
	})
}

func TestProgressParser(t *testing.T) {
	var got []FetchProgress
	p := &progressParser{report: func(fp FetchProgress) { got = append(got, fp) }}
	stderr := "remote: Enumerating objects: 10, done.\n" +
		"Receiving objects:  10% (4/40)\r" +
		"Receiving objects:  50% (20/40), 1.50 KiB | 1.00 KiB/s\r" +
		"Receiving objects:  50% (20/40), 1.50 KiB | 1.00 KiB/s\r" +
		"Receiving objects: 100% (40/40), 5.20 MiB | 10.00 MiB/s, done.\n" +
		"Resolving deltas: 100% (3/3), done.\n" +
		"fatal: something\r\n"
	for i := 0; i < len(stderr); i += 5 {
		p.Write([]byte(stderr[i:min(i+5, len(stderr))]))
	}
	want := []FetchProgress{{4, 40, 0}, {20, 40, 1536}, {40, 40, 5452595}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if tail := p.stderrTail(); !strings.Contains(tail, "fatal: something") || strings.Contains(tail, "Receiving") {
		t.Fatalf("stderrTail = %q", tail)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512 bytes": 512, "1.00 KiB": 1024, "2.50 MiB": 2621440, "1.00 GiB": 1 << 30, "NaN MiB": 0, "1 TB": 0, "x": 0, "-1 KiB": 0, "Inf KiB": 0} {
		if got := parseSize(in); got != want {
			t.Errorf("parseSize(%q) = %d, want %d", in, got, want)
		}
	}
}

func FuzzProgressLine(f *testing.F) {
	f.Add("Receiving objects:  50% (20/40), 1.50 KiB | 1.00 KiB/s")
	f.Add("Receiving objects: 100% (40/40), done.")
	f.Fuzz(func(t *testing.T, line string) {
		fp, ok := parseProgressLine(line)
		if ok && (fp.Objects < 0 || fp.TotalObjects < 0 || fp.Bytes < 0) {
			t.Fatalf("negative progress %+v from %q", fp, line)
		}
	})
}

func TestRefTransaction(t *testing.T) {
	zero := strings.Repeat("0", 40)
	before := map[string]string{"refs/heads/main": id1, "refs/heads/gone": id2, "refs/tags/v1": id3}
	after := map[string]string{"refs/heads/main": id2, "refs/heads/new": id1, "refs/tags/v1": id3}
	want := "delete refs/heads/gone " + id2 + "\n" +
		"update refs/heads/main " + id2 + " " + id1 + "\n" +
		"update refs/heads/new " + id1 + " " + zero + "\n"
	if got := refTransaction(before, after); got != want {
		t.Fatalf("refTransaction =\n%s\nwant\n%s", got, want)
	}
	if got := refTransaction(after, after); got != "" {
		t.Fatalf("refTransaction of equal refs = %q, want nothing", got)
	}
}

func TestPackFilesMoveIndexLast(t *testing.T) {
	names := []string{"pack-a.idx", "pack-a.keep", "pack-a.pack", "pack-a.rev", "tmp_pack_x"}
	var moved []string
	for _, n := range names {
		if packFileRank(n) >= 0 {
			moved = append(moved, n)
		}
	}
	slices.SortStableFunc(moved, func(a, b string) int { return packFileRank(a) - packFileRank(b) })
	if want := []string{"pack-a.pack", "pack-a.rev", "pack-a.idx"}; !slices.Equal(moved, want) {
		t.Fatalf("move order %v, want %v", moved, want)
	}
}
