package mesh_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/gitexec"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// BenchmarkClone clones the 40,000-object preset (a bare clone) in three ways,
// interleaved within each iteration so that load on a shared machine falls on all of
// them alike:
//
//   - file: `git clone --no-local file://` of the store's repository, the floor;
//   - servegit: `git clone ssh://...` whose transport is Store.ServeGit in this
//     process (the test's ssh stand-in copies bytes over a unix socket);
//   - sidecar: the same through Client -> Server (loopback HTTP, upgraded stream)
//     -> Store, the sidecar running in this process.
//
// It reports seconds per clone for each and the ratios servegit/file and
// sidecar/servegit. Run:
//
//	go test -run '^$' -bench BenchmarkClone -benchtime 10x ./mesh/
func BenchmarkClone(b *testing.B) {
	ctx := ctxT(b)
	s := openStore(b)
	src := testutil.CachedRepo(b, testutil.Preset40k)
	if _, err := s.Fetch(ctx, "BENCH", "big", mesh.FetchOptions{URL: "file://" + src}); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(s.Root(), "BENCH", "big.git")
	// A hosted repository has a bitmap after maintenance, as the preset does.
	if _, err := gitexec.Run(ctx, dir, nil, "repack", "-a", "-d", "-q", "--write-bitmap-index"); err != nil {
		b.Fatal(err)
	}
	type way struct {
		name  string
		g     *testutil.Git
		url   string
		total time.Duration
	}
	ways := []*way{
		{name: "file", g: testutil.NewGit(b), url: "file://" + dir},
		{name: "servegit", g: newGit(b, startGitServer(b, s)), url: repoURL("BENCH", "big")},
		// The same transport as servegit, but running git directly: what the test
		// relay costs, so that ServeGit's own overhead can be told apart.
		{name: "relay", g: newGit(b, startGitServer(b, plainBackend{s.Root()})), url: repoURL("BENCH", "big")},
	}
	if c := sidecarClient(b, s); c != nil {
		ways = append(ways, &way{name: "sidecar", g: newGit(b, startGitServer(b, c)), url: repoURL("BENCH", "big")})
	}
	out := b.TempDir()
	target := filepath.Join(out, "c.git")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, w := range ways {
			os.RemoveAll(target)
			t0 := time.Now()
			w.g.Run(out, "clone", "-q", "--bare", w.url, target)
			w.total += time.Since(t0)
		}
	}
	b.StopTimer()
	for _, w := range ways {
		b.ReportMetric(w.total.Seconds()/float64(b.N), w.name+"-s/clone")
	}
	b.ReportMetric(float64(ways[1].total)/float64(ways[0].total), "servegit/file")
	b.ReportMetric(float64(ways[1].total)/float64(ways[2].total), "servegit/relay")
	if len(ways) > 3 {
		b.ReportMetric(float64(ways[3].total)/float64(ways[1].total), "sidecar/servegit")
	}
}

// plainBackend runs git's service on the repository directly, with none of the
// store's work (validation, locks, advertisement watch): the floor for ServeGit
// over the same transport.
type plainBackend struct{ root string }

func (p plainBackend) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := gitexec.Command(ctx, filepath.Join(p.root, req.Repo.Project, req.Repo.Slug+".git"), req.Env(), req.Service.Subcommand(), ".")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	return cmd.Run()
}
