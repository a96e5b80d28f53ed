package gogitbackend_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/gogitbackend"
	"github.com/gitfleet/gitfleet/internal/testutil"
)

const zeroID = "0000000000000000000000000000000000000000"

// seeded returns a backend holding PROJ/repo, seeded with testutil.SmallRepo,
// and that repository's refs.
func seeded(t *testing.T) (*gogitbackend.Backend, map[string]string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src.git")
	require.NoError(t, testutil.BuildRepoGoGit(src, testutil.SmallRepo))
	b := &gogitbackend.Backend{Root: t.TempDir()}
	require.NoError(t, b.Import(t.Context(), "PROJ", "repo", src))
	refs, err := b.Refs(t.Context(), "PROJ", "repo")
	require.NoError(t, err)
	return b, refs
}

func request(service gitfleet.Service, protocol int) gitfleet.GitRequest {
	return gitfleet.GitRequest{Service: service, Repo: gitfleet.RepoName{Project: "PROJ", Slug: "repo"}, Protocol: protocol}
}

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// serveOpen runs ServeGit with input as the client's stream, which stays open
// afterwards as a git client's does, and fails the test when ServeGit does not
// return by itself.
func serveOpen(t *testing.T, b *gogitbackend.Backend, req gitfleet.GitRequest, input string) (string, string, error) {
	t.Helper()
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { io.WriteString(pw, input) }()
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- b.ServeGit(context.Background(), req, pr, &stdout, &stderr) }()
	select {
	case err := <-done:
		return stdout.String(), stderr.String(), err
	case <-time.After(10 * time.Second):
		pw.CloseWithError(io.ErrClosedPipe)
		<-done
		t.Fatal("ServeGit did not return while the client's stream stayed open")
		return "", "", nil
	}
}

func TestServeGitContract(t *testing.T) {
	b, refs := seeded(t)
	main := refs["refs/heads/main"]

	t.Run("missing repository: not found, nothing written", func(t *testing.T) {
		for _, svc := range []gitfleet.Service{gitfleet.UploadPack, gitfleet.ReceivePack, gitfleet.UploadArchive} {
			var stdout, stderr bytes.Buffer
			req := request(svc, 0)
			req.Repo.Slug = "missing"
			err := b.ServeGit(t.Context(), req, strings.NewReader(""), &stdout, &stderr)
			require.ErrorIs(t, err, gitfleet.ErrNotFound, svc)
			assert.Zero(t, stdout.Len()+stderr.Len(), svc)
		}
	})
	t.Run("upload-archive refused", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		err := b.ServeGit(t.Context(), request(gitfleet.UploadArchive, 0), strings.NewReader(""), &stdout, &stderr)
		require.ErrorIs(t, err, gogitbackend.ErrUnsupported)
		var exit interface{ ExitCode() int }
		require.ErrorAs(t, err, &exit)
		assert.Equal(t, 128, exit.ExitCode())
		assert.Contains(t, stderr.String(), "git-upload-archive is not served")
		assert.Zero(t, stdout.Len())
	})
	t.Run("ls-remote returns with the stream open", func(t *testing.T) {
		out, _, err := serveOpen(t, b, request(gitfleet.UploadPack, 0), "0000")
		require.NoError(t, err)
		assert.Contains(t, out, main+" HEAD\x00")
		assert.Contains(t, out, "symref=HEAD:refs/heads/main")
		assert.Contains(t, out, "refs/tags/v0.0.0^{}")
	})
	t.Run("protocol v1 says its version, v2 is answered as v0", func(t *testing.T) {
		out, _, err := serveOpen(t, b, request(gitfleet.UploadPack, 1), "0000")
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(out, pkt("version 1\n")), out[:20])
		out, _, err = serveOpen(t, b, request(gitfleet.UploadPack, 2), "0000")
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(out[4:], main+" HEAD\x00"), out[:60])
	})
	t.Run("clone without negotiation", func(t *testing.T) {
		out, _, err := serveOpen(t, b, request(gitfleet.UploadPack, 0), pkt("want "+main+" ofs-delta\n")+"0000"+pkt("done\n"))
		require.NoError(t, err)
		i := strings.Index(out, pkt("NAK\n"))
		require.GreaterOrEqual(t, i, 0)
		assert.True(t, strings.HasPrefix(out[i+8:], "PACK"))
	})
	t.Run("shallow refused", func(t *testing.T) {
		_, stderr, err := serveOpen(t, b, request(gitfleet.UploadPack, 0), pkt("want "+main+"\n")+pkt("deepen 1\n")+"0000")
		var exit *gogitbackend.ExitError
		require.ErrorAs(t, err, &exit)
		assert.Contains(t, stderr, "shallow")
	})
	t.Run("stale old id refused, delete without a pack", func(t *testing.T) {
		branch := refs["refs/heads/branch-000"]
		require.NotEmpty(t, branch)
		cmds := pkt(branch+" "+zeroID+" refs/heads/main\x00report-status\n") + // main is not at branch
			pkt(branch+" "+zeroID+" refs/heads/branch-000\n") + "0000"
		out, _, err := serveOpen(t, b, request(gitfleet.ReceivePack, 0), cmds)
		require.NoError(t, err)
		assert.Contains(t, out, pkt("unpack ok\n"))
		assert.Contains(t, out, pkt("ng refs/heads/main stale info\n"))
		assert.Contains(t, out, pkt("ok refs/heads/branch-000\n"))
		after, err := b.Refs(t.Context(), "PROJ", "repo")
		require.NoError(t, err)
		assert.Equal(t, main, after["refs/heads/main"])
		assert.NotContains(t, after, "refs/heads/branch-000")
	})
	t.Run("push with nothing to do", func(t *testing.T) {
		_, _, err := serveOpen(t, b, request(gitfleet.ReceivePack, 0), "0000")
		require.NoError(t, err)
	})
}

func TestCreateAndRefs(t *testing.T) {
	b := &gogitbackend.Backend{Root: t.TempDir()}
	require.NoError(t, b.Create(t.Context(), "proj", "Empty"))
	refs, err := b.Refs(t.Context(), "PROJ", "empty")
	require.NoError(t, err)
	assert.Empty(t, refs)
	assert.ErrorIs(t, b.Create(t.Context(), "PROJ", "empty"), fs.ErrExist)
	_, err = b.Refs(t.Context(), "PROJ", "other")
	assert.ErrorIs(t, err, gitfleet.ErrNotFound)
	assert.ErrorIs(t, b.Create(t.Context(), "PROJ", "../x"), gitfleet.ErrInvalidName)
}
