package testutil

import (
	"fmt"
	"math/rand"
)

// The identities and clock of every synthetic repository: a RepoSpec's commits
// are made by SpecAuthor and SpecCommitter, and commit i is dated SpecEpoch+60*i.
const (
	SpecAuthorName     = "Synthetic Author"
	SpecAuthorEmail    = "author@example.com"
	SpecCommitterName  = "Synthetic Committer"
	SpecCommitterEmail = "committer@example.com"
	SpecTaggerName     = "Synthetic Tagger"
	SpecTaggerEmail    = "tagger@example.com"
	SpecEpoch          = 1700000000
)

// SpecFile is one file a synthetic commit writes: its path and the mark of its
// blob.
type SpecFile struct {
	Path string
	Blob int
}

// SpecCommit is one commit on main of a synthetic repository. Files are applied
// in order on top of the previous commit's tree (a later entry for the same path
// wins), as git fast-import applies them.
type SpecCommit struct {
	Mark    int
	Time    int64
	Message string
	Files   []SpecFile
}

// SpecVisitor receives the objects of a synthetic repository in order from
// WalkSpec. Marks number blobs and commits together from 1, as fast-import marks
// do; every mark refers to an object visited before.
type SpecVisitor struct {
	Blob   func(mark int, content []byte) error
	Commit func(c SpecCommit) error
	// Branch points refs/heads/<name> at a commit.
	Branch func(name string, commit int) error
	// Tag makes an annotated tag <name> on a commit.
	Tag func(name string, commit int, time int64, message string) error
}

// WalkSpec visits the objects spec describes. It is the one description of a
// synthetic repository: BuildRepo feeds it to git fast-import and BuildRepoGoGit
// writes it with go-git, so both yield the same object ids.
func WalkSpec(spec RepoSpec, v SpecVisitor) error {
	if spec.Commits < 1 || spec.FilesPerCommit < 1 || spec.FileSize < 16 || spec.Dirs < 1 {
		return fmt.Errorf("testutil: invalid repository spec %+v", spec)
	}
	rng := rand.New(rand.NewSource(spec.Seed))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-+=(){};,.\n"
	content := make([]byte, 0, spec.FileSize*2)
	mark := 0
	commitMarks := make([]int, 0, spec.Commits)
	for c := 0; c < spec.Commits; c++ {
		dir := rng.Intn(spec.Dirs)
		sub := rng.Intn(4)
		files := make([]SpecFile, 0, spec.FilesPerCommit)
		for f := 0; f < spec.FilesPerCommit; f++ {
			size := spec.FileSize/2 + rng.Intn(spec.FileSize+1)
			content = content[:0]
			for i := 0; i < size; i++ {
				content = append(content, alphabet[rng.Intn(len(alphabet))])
			}
			mark++
			if err := v.Blob(mark, content); err != nil {
				return err
			}
			files = append(files, SpecFile{fmt.Sprintf("d%03d/s%d/f%03d.txt", dir, sub, rng.Intn(64)), mark})
		}
		mark++
		commitMarks = append(commitMarks, mark)
		msg := fmt.Sprintf("commit %d: update d%03d/s%d\n", c, dir, sub)
		if err := v.Commit(SpecCommit{Mark: mark, Time: SpecEpoch + int64(c)*60, Message: msg, Files: files}); err != nil {
			return err
		}
	}
	for b := 0; b < spec.Branches; b++ {
		at := commitMarks[(b+1)*len(commitMarks)/(spec.Branches+1)]
		if err := v.Branch(fmt.Sprintf("branch-%03d", b), at); err != nil {
			return err
		}
	}
	for g := 0; g < spec.Tags; g++ {
		at := commitMarks[(g+1)*len(commitMarks)/(spec.Tags+1)]
		if err := v.Tag(fmt.Sprintf("v%d.0.0", g), at, SpecEpoch+int64(g), fmt.Sprintf("release %d\n", g)); err != nil {
			return err
		}
	}
	return nil
}
