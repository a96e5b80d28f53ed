package sshserve

import (
	"fmt"
	"strings"
)

// The services a client can run. Both the dashed spelling ("git-upload-pack") and
// the spaced one ("git upload-pack") are accepted on the wire; Command.Service is
// always the dashed form.
const (
	ServiceUploadPack    = "git-upload-pack"
	ServiceReceivePack   = "git-receive-pack"
	ServiceUploadArchive = "git-upload-archive"
	CommandWhoami        = "whoami"
)

// MaxCommandLength bounds the exec request a client may send; longer ones are refused
// before any parsing.
const MaxCommandLength = 4096

// maxKeyLength bounds a project key and a repository slug.
const maxKeyLength = 128

// Command is a parsed exec request.
type Command struct {
	// Service is ServiceUploadPack, ServiceReceivePack, ServiceUploadArchive or
	// CommandWhoami.
	Service string
	// Project is the project key, upper-cased; empty for whoami.
	Project string
	// Slug is the repository slug, lower-cased, without ".git"; empty for whoami.
	Slug string
}

// Access is the access a service needs: git-upload-pack and git-upload-archive read,
// git-receive-pack writes.
func (c Command) Access() Access {
	if c.Service == ServiceReceivePack {
		return AccessWrite
	}
	return AccessRead
}

// Repo returns "PROJECT/slug", the repository name a GitBackend receives.
func (c Command) Repo() string { return c.Project + "/" + c.Slug }

// ParseCommand parses the command line of an exec request as git sends it, such as
// "git-upload-pack '/PROJ/repo.git'", and validates the repository path. It accepts
// "whoami", the three git services in dashed or spaced spelling, and one argument
// either single-quoted the way git quotes it ('a'\”b' for a'b) or bare. Anything
// else, including control characters, extra arguments, options and shell syntax,
// is an error wrapping ErrUnknownCommand, ErrBadQuoting or ErrBadRepoPath.
func ParseCommand(line string) (Command, error) {
	if len(line) > MaxCommandLength {
		return Command{}, fmt.Errorf("%w: command longer than %d bytes", ErrUnknownCommand, MaxCommandLength)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c == 0x7f {
			return Command{}, fmt.Errorf("%w: control character in command", ErrBadQuoting)
		}
	}
	if line == CommandWhoami {
		return Command{Service: CommandWhoami}, nil
	}
	name, arg, ok := strings.Cut(line, " ")
	if name == "git" && ok {
		var sub string
		sub, arg, ok = strings.Cut(arg, " ")
		name = "git-" + sub
	}
	switch name {
	case ServiceUploadPack, ServiceReceivePack, ServiceUploadArchive:
	default:
		return Command{}, fmt.Errorf("%w: %q", ErrUnknownCommand, printable(name))
	}
	if !ok {
		return Command{}, fmt.Errorf("%w: %s needs a repository argument", ErrBadRepoPath, name)
	}
	path, err := unquote(arg)
	if err != nil {
		return Command{}, err
	}
	project, slug, err := ParseRepoPath(path)
	if err != nil {
		return Command{}, err
	}
	return Command{Service: name, Project: project, Slug: slug}, nil
}

// unquote returns the one argument in s: single-quoted as git's sq_quote writes it
// (a quote inside is written '\” and an exclamation mark '\!'), or bare.
func unquote(s string) (string, error) {
	if !strings.HasPrefix(s, "'") {
		if strings.ContainsAny(s, " '\"\\") {
			return "", fmt.Errorf("%w: unquoted argument with quotes or spaces", ErrBadQuoting)
		}
		return s, nil
	}
	var b strings.Builder
	i := 1
	for {
		j := strings.IndexByte(s[i:], '\'')
		if j < 0 {
			return "", fmt.Errorf("%w: unterminated quote", ErrBadQuoting)
		}
		b.WriteString(s[i : i+j])
		i += j + 1
		if i == len(s) {
			return b.String(), nil
		}
		// After a closing quote only \' or \! followed by a new opening quote may
		// follow; anything else (a space and a second argument, a ;) is refused.
		if len(s) < i+3 || s[i] != '\\' || (s[i+1] != '\'' && s[i+1] != '!') || s[i+2] != '\'' {
			return "", fmt.Errorf("%w: text after the quoted argument", ErrBadQuoting)
		}
		b.WriteByte(s[i+1])
		i += 3
	}
}

// ParseRepoPath parses a repository path as clients send it: "PROJ/repo",
// "/PROJ/repo.git", "proj/repo.git". It returns the project key upper-cased and the
// slug lower-cased without ".git". A project key is a letter followed by letters,
// digits or underscores; a slug is letters, digits, '-', '_' and '.', starting with
// a letter or digit and not ending in ".git"; each is at most 128 characters (the
// rules of mesh's repository names). Anything else
// (more or fewer components, "..", options, absolute file paths) is an error
// wrapping ErrBadRepoPath.
func ParseRepoPath(p string) (project, slug string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w: %s: %q", ErrBadRepoPath, why, printable(p))
	}
	rest := strings.TrimPrefix(p, "/")
	rest = strings.TrimSuffix(rest, ".git")
	project, slug, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(slug, "/") {
		return bad("want PROJECT/repository")
	}
	if !validProject(project) {
		return bad("invalid project key")
	}
	if !validSlug(slug) {
		return bad("invalid repository slug")
	}
	return strings.ToUpper(project), strings.ToLower(slug), nil
}

func validProject(s string) bool {
	if s == "" || len(s) > maxKeyLength || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

func validSlug(s string) bool {
	if s == "" || len(s) > maxKeyLength {
		return false
	}
	if c := s[0]; !isLetter(c) && !isDigit(c) {
		return false
	}
	if strings.HasSuffix(strings.ToLower(s), ".git") {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// printable shortens s and escapes what a log line should not carry verbatim.
func printable(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
