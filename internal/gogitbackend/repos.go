package gogitbackend

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/gitfleet/gitfleet"
)

// Create creates an empty bare repository whose HEAD names refs/heads/main. A
// repository that exists already is an error wrapping fs.ErrExist.
func (b *Backend) Create(ctx context.Context, project, slug string) error {
	repo, err := gitfleet.NewRepoName(project, slug)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := b.Dir(repo)
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("gogitbackend: create %s: %w", repo, fs.ErrExist)
	}
	_, err = git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		Bare:        true,
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("gogitbackend: create %s: %w", repo, err)
	}
	return nil
}

// Refs returns the repository's refs (refs/..., not HEAD) as name -> id. A
// missing repository is an error wrapping gitfleet.ErrNotFound.
func (b *Backend) Refs(ctx context.Context, project, slug string) (map[string]string, error) {
	repo, err := b.existing(ctx, project, slug)
	if err != nil {
		return nil, err
	}
	iter, err := b.storage(repo).IterReferences()
	if err != nil {
		return nil, fmt.Errorf("gogitbackend: refs of %s: %w", repo, err)
	}
	refs := map[string]string{}
	err = iter.ForEach(func(r *plumbing.Reference) error {
		if r.Type() == plumbing.HashReference && r.Name() != plumbing.HEAD {
			refs[r.Name().String()] = r.Hash().String()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gogitbackend: refs of %s: %w", repo, err)
	}
	return refs, nil
}

// Import copies every object and every ref of the local repository at src (bare
// or not) into the repository, which is created when missing; refs the
// repository has and src has not are kept. It is how a fixture seeds a
// repository without the git program.
func (b *Backend) Import(ctx context.Context, project, slug, src string) error {
	repo, err := gitfleet.NewRepoName(project, slug)
	if err != nil {
		return err
	}
	if !b.exists(repo) {
		if err := b.Create(ctx, project, slug); err != nil {
			return err
		}
	}
	from, err := git.PlainOpen(src)
	if err != nil {
		return fmt.Errorf("gogitbackend: import %s: open %s: %w", repo, src, err)
	}
	to := b.storage(repo)
	objs, err := from.Storer.IterEncodedObjects(plumbing.AnyObject)
	if err != nil {
		return fmt.Errorf("gogitbackend: import %s: %w", repo, err)
	}
	err = objs.ForEach(func(o plumbing.EncodedObject) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if to.HasEncodedObject(o.Hash()) == nil {
			return nil
		}
		_, err := to.SetEncodedObject(o)
		return err
	})
	if err != nil {
		return fmt.Errorf("gogitbackend: import %s: objects: %w", repo, err)
	}
	refs, err := from.Storer.IterReferences()
	if err != nil {
		return fmt.Errorf("gogitbackend: import %s: %w", repo, err)
	}
	mu := b.lock(repo)
	mu.Lock()
	defer mu.Unlock()
	err = refs.ForEach(func(r *plumbing.Reference) error {
		if r.Type() != plumbing.HashReference || r.Name() == plumbing.HEAD {
			return nil
		}
		return to.SetReference(r)
	})
	if err != nil {
		return fmt.Errorf("gogitbackend: import %s: refs: %w", repo, err)
	}
	return nil
}

// existing validates a name and checks the repository is there.
func (b *Backend) existing(ctx context.Context, project, slug string) (gitfleet.RepoName, error) {
	repo, err := gitfleet.NewRepoName(project, slug)
	if err != nil {
		return repo, err
	}
	if err := ctx.Err(); err != nil {
		return repo, err
	}
	if !b.exists(repo) {
		return repo, fmt.Errorf("gogitbackend: %s: %w", repo, gitfleet.ErrNotFound)
	}
	return repo, nil
}
