package mesh

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest project key or slug accepted.
const MaxNameLen = 128

// NormalizeProject validates a project key and returns it upper-cased. A key is ASCII,
// starts with a letter and holds only letters, digits and '_', at most MaxNameLen
// characters. Anything else (including Unicode look-alikes, which are rejected before
// case mapping) fails with ErrInvalidName.
func NormalizeProject(project string) (string, error) {
	if len(project) == 0 || len(project) > MaxNameLen {
		return "", fmt.Errorf("%w: project key %q: length must be 1 to %d", ErrInvalidName, project, MaxNameLen)
	}
	b := []byte(project)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
			b[i] = c
		}
		ok := (c >= 'A' && c <= 'Z') || (i > 0 && ((c >= '0' && c <= '9') || c == '_'))
		if !ok {
			return "", fmt.Errorf("%w: project key %q", ErrInvalidName, project)
		}
	}
	return string(b), nil
}

// NormalizeSlug validates a repository slug and returns it lower-cased. A slug is
// ASCII, starts with a letter or digit, holds only letters, digits, '.', '_' and '-',
// is at most MaxNameLen characters and does not end in ".git". Anything else fails
// with ErrInvalidName.
func NormalizeSlug(slug string) (string, error) {
	if len(slug) == 0 || len(slug) > MaxNameLen {
		return "", fmt.Errorf("%w: slug %q: length must be 1 to %d", ErrInvalidName, slug, MaxNameLen)
	}
	b := []byte(slug)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
			b[i] = c
		}
		ok := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return "", fmt.Errorf("%w: slug %q", ErrInvalidName, slug)
		}
	}
	s := string(b)
	if strings.HasSuffix(s, ".git") {
		return "", fmt.Errorf("%w: slug %q must not end in .git", ErrInvalidName, slug)
	}
	return s, nil
}

// Normalize validates and normalises a project key and slug together.
func Normalize(project, slug string) (string, string, error) {
	p, err := NormalizeProject(project)
	if err != nil {
		return "", "", err
	}
	s, err := NormalizeSlug(slug)
	if err != nil {
		return "", "", err
	}
	return p, s, nil
}

// ParseRepoPath splits a repository path as Git clients send it ("PROJECT/slug",
// optionally with one leading '/' and a trailing ".git") into a normalised project key
// and slug.
func ParseRepoPath(repo string) (project, slug string, err error) {
	p := strings.TrimPrefix(repo, "/")
	p = strings.TrimSuffix(p, ".git")
	project, slug, ok := strings.Cut(p, "/")
	if !ok {
		return "", "", fmt.Errorf("%w: repository path %q is not PROJECT/slug", ErrInvalidName, repo)
	}
	return Normalize(project, slug)
}
