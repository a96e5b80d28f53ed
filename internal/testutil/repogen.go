package testutil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/gitexec"
)

// RepoSpec describes a synthetic repository. The same spec always yields the same
// objects (the same commit ids), so tests and benchmarks can compare across runs.
type RepoSpec struct {
	Commits        int   // commits on main; at least 1
	FilesPerCommit int   // files each commit adds or rewrites; at least 1
	FileSize       int   // mean file size in bytes (sizes vary ±50%); at least 16
	Dirs           int   // top-level directories files are spread over; at least 1
	Branches       int   // extra branches, spread over the history
	Tags           int   // annotated tags, spread over the history
	Seed           int64 // seeds the content
}

// Preset40k is the benchmark repository: about 40,000 objects and 15 MB packed.
var Preset40k = RepoSpec{Commits: 2300, FilesPerCommit: 15, FileSize: 520, Dirs: 40, Branches: 20, Tags: 30, Seed: 40000}

// SmallRepo is a quick repository for behaviour tests: a few hundred objects.
var SmallRepo = RepoSpec{Commits: 20, FilesPerCommit: 5, FileSize: 200, Dirs: 4, Branches: 3, Tags: 2, Seed: 1}

// GenerateRepo creates a bare repository at dir (which must not exist or be empty)
// filled according to spec, and fails the test on error.
func GenerateRepo(t testing.TB, dir string, spec RepoSpec) {
	t.Helper()
	Require(t, "git")
	if err := BuildRepo(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
}

// BuildRepo creates a bare repository at dir filled according to spec with
// `git fast-import`, then repacks it into one pack with a bitmap, as a hosted
// repository would be after maintenance.
func BuildRepo(ctx context.Context, dir string, spec RepoSpec) error {
	if spec.Commits < 1 || spec.FilesPerCommit < 1 || spec.FileSize < 16 || spec.Dirs < 1 {
		return fmt.Errorf("testutil: invalid repository spec %+v", spec)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := gitexec.Run(ctx, "", nil, "init", "-q", "--bare", dir); err != nil {
		return err
	}
	if _, err := gitexec.Run(ctx, dir, nil, "symbolic-ref", "HEAD", "refs/heads/main"); err != nil {
		return err
	}
	cmd := gitexec.Command(ctx, dir, nil, "fast-import", "--quiet", "--done")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	werr := writeFastImport(stdin, spec)
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return gitexec.Wrap(cmd.Args[1:], err, stderr.String())
	}
	if werr != nil {
		return werr
	}
	_, err = gitexec.Run(ctx, dir, nil, "repack", "-a", "-d", "-q", "--write-bitmap-index")
	return err
}

func writeFastImport(w io.Writer, spec RepoSpec) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	err := WalkSpec(spec, SpecVisitor{
		Blob: func(mark int, content []byte) error {
			fmt.Fprintf(bw, "blob\nmark :%d\ndata %d\n", mark, len(content))
			bw.Write(content)
			bw.WriteString("\n")
			return nil
		},
		Commit: func(c SpecCommit) error {
			fmt.Fprintf(bw, "commit refs/heads/main\nmark :%d\nauthor %s <%s> %d +0000\ncommitter %s <%s> %d +0000\ndata %d\n%s",
				c.Mark, SpecAuthorName, SpecAuthorEmail, c.Time, SpecCommitterName, SpecCommitterEmail, c.Time, len(c.Message), c.Message)
			for _, f := range c.Files {
				fmt.Fprintf(bw, "M 100644 :%d %s\n", f.Blob, f.Path)
			}
			bw.WriteString("\n")
			return nil
		},
		Branch: func(name string, commit int) error {
			fmt.Fprintf(bw, "reset refs/heads/%s\nfrom :%d\n\n", name, commit)
			return nil
		},
		Tag: func(name string, commit int, time int64, message string) error {
			fmt.Fprintf(bw, "tag %s\nfrom :%d\ntagger %s <%s> %d +0000\ndata %d\n%s\n",
				name, commit, SpecTaggerName, SpecTaggerEmail, time, len(message), message)
			return nil
		},
	})
	if err != nil {
		return err
	}
	bw.WriteString("done\n")
	return bw.Flush()
}

// CachedRepo returns a bare repository built from spec, generating it once per
// machine under the user's cache directory (keyed by the spec) and reusing it
// afterwards. Tests must not modify it: clone it, or copy it with CopyRepo.
func CachedRepo(t testing.TB, spec RepoSpec) string {
	t.Helper()
	Require(t, "git")
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := fmt.Sprintf("%s/gitfleet-testrepos/c%d-f%d-s%d-d%d-b%d-t%d-seed%d.git", base,
		spec.Commits, spec.FilesPerCommit, spec.FileSize, spec.Dirs, spec.Branches, spec.Tags, spec.Seed)
	if _, err := os.Stat(dir + "/gitfleet-complete"); err == nil {
		return dir
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	os.RemoveAll(tmp)
	if err := BuildRepo(context.Background(), tmp, spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp+"/gitfleet-complete", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(dir + "/gitfleet-complete"); serr == nil { // another process won the race
			os.RemoveAll(tmp)
			return dir
		}
		t.Fatal(err)
	}
	return dir
}
