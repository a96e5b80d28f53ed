package gitfleet

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest project key or repository slug accepted.
const MaxNameLen = 128

// RepoName names a repository: a project key and a slug, both normalised (the key
// upper-case, the slug lower-case without ".git"). Values are made by ParseRepoPath
// or NewRepoName, which validate; the zero value names no repository.
type RepoName struct {
	Project string `json:"project"`
	Slug    string `json:"slug"`
}

// NewRepoName validates and normalises a project key and a slug together. See
// NormalizeProjectKey and NormalizeSlug for the rules.
func NewRepoName(project, slug string) (RepoName, error) {
	p, err := NormalizeProjectKey(project)
	if err != nil {
		return RepoName{}, err
	}
	s, err := NormalizeSlug(slug)
	if err != nil {
		return RepoName{}, err
	}
	return RepoName{Project: p, Slug: s}, nil
}

// ParseRepoPath parses a repository path as Git clients send it: "PROJ/repo",
// "/PROJ/repo.git", "proj/repo.git". Exactly two components are accepted, with at
// most one leading '/' and one trailing ".git"; anything else (more or fewer
// components, "..", options, absolute file paths) is an error wrapping
// ErrInvalidName.
func ParseRepoPath(path string) (RepoName, error) {
	rest := strings.TrimPrefix(path, "/")
	rest = strings.TrimSuffix(rest, ".git")
	project, slug, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(slug, "/") {
		return RepoName{}, fmt.Errorf("%w: repository path %q is not PROJECT/slug", ErrInvalidName, printable(path))
	}
	return NewRepoName(project, slug)
}

// String returns "PROJECT/slug", the form logs, events and the sidecar use.
func (r RepoName) String() string { return r.Project + "/" + r.Slug }

// IsZero reports whether r names no repository.
func (r RepoName) IsZero() bool { return r.Project == "" && r.Slug == "" }

// NormalizeProjectKey validates a project key and returns it upper-cased. A key is
// ASCII, starts with a letter and holds only letters, digits and '_', at most
// MaxNameLen characters. Anything else (Unicode look-alikes included: they are
// refused before case mapping) fails with an error wrapping ErrInvalidName.
func NormalizeProjectKey(key string) (string, error) {
	if len(key) == 0 || len(key) > MaxNameLen {
		return "", fmt.Errorf("%w: project key %q: length must be 1 to %d", ErrInvalidName, printable(key), MaxNameLen)
	}
	b := []byte(key)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
			b[i] = c
		}
		ok := (c >= 'A' && c <= 'Z') || (i > 0 && ((c >= '0' && c <= '9') || c == '_'))
		if !ok {
			return "", fmt.Errorf("%w: project key %q must start with a letter and hold only letters, digits and _", ErrInvalidName, printable(key))
		}
	}
	return string(b), nil
}

// CheckProjectKey reports whether key is a project key exactly as stored: valid
// and already upper-case (an API that creates projects takes keys only in this
// form, as Bitbucket does).
func CheckProjectKey(key string) error {
	n, err := NormalizeProjectKey(key)
	if err != nil {
		return err
	}
	if n != key {
		return fmt.Errorf("%w: project key %q must be upper-case (%s)", ErrInvalidName, printable(key), n)
	}
	return nil
}

// NormalizeSlug validates a repository slug and returns it lower-cased. A slug is
// ASCII, starts with a letter or digit, holds only letters, digits, '.', '_' and
// '-', is at most MaxNameLen characters, does not end in ".git" or '.' (Windows
// drops a trailing dot from file names) and holds no ".." (so no slug reads as a
// path step). Anything else fails with an error wrapping ErrInvalidName.
func NormalizeSlug(slug string) (string, error) {
	if len(slug) == 0 || len(slug) > MaxNameLen {
		return "", fmt.Errorf("%w: slug %q: length must be 1 to %d", ErrInvalidName, printable(slug), MaxNameLen)
	}
	b := []byte(slug)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
			b[i] = c
		}
		ok := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '.' || c == '_' || c == '-'))
		if !ok {
			return "", fmt.Errorf("%w: slug %q must start with a letter or digit and hold only letters, digits, '.', '_' and '-'", ErrInvalidName, printable(slug))
		}
	}
	s := string(b)
	if strings.HasSuffix(s, ".git") {
		return "", fmt.Errorf("%w: slug %q must not end in .git", ErrInvalidName, printable(slug))
	}
	if strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return "", fmt.Errorf("%w: slug %q must not end in '.' or hold \"..\"", ErrInvalidName, printable(slug))
	}
	return s, nil
}

// Slugify turns a repository's display name into its slug, as Bitbucket does:
// lower-cased, every run of characters other than a-z, 0-9, '.', '_' and '-'
// turned into '-', runs of '.' made one, then '-', '.' and '_' trimmed from both ends. A name that gives
// no valid slug is an error wrapping ErrInvalidName.
func Slugify(name string) (string, error) {
	var b strings.Builder
	run := false
	for _, r := range strings.ToLower(name) {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			b.WriteRune(r)
			run = false
			continue
		}
		if !run {
			b.WriteByte('-')
			run = true
		}
	}
	s := b.String()
	for strings.Contains(s, "..") {
		s = strings.ReplaceAll(s, "..", ".")
	}
	s = strings.Trim(s, "-._")
	if _, err := NormalizeSlug(s); err != nil {
		return "", fmt.Errorf("%w: repository name %q gives no valid slug (letters, digits, '.', '_' or '-'; at most %d characters; not ending in .git)", ErrInvalidName, printable(name), MaxNameLen)
	}
	return s, nil
}

// printable shortens s for an error message and replaces invalid UTF-8.
func printable(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
