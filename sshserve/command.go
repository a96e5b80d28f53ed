package sshserve

import (
	"fmt"
	"strings"

	"github.com/gitfleet/gitfleet"
)

// CommandWhoami is the one command that is not a git service: it prints the
// principal's name. Command.Service holds it for a whoami request. Both the dashed
// spelling of a git service ("git-upload-pack") and the spaced one ("git
// upload-pack") are accepted on the wire; Command.Service is always the dashed
// form, one of gitfleet.UploadPack, gitfleet.ReceivePack and
// gitfleet.UploadArchive.
const CommandWhoami gitfleet.Service = "whoami"

// CommandLFSAuthenticate is git-lfs's request for an HTTPS endpoint and a token
// ("git-lfs-authenticate <repo> upload|download"), which git-lfs sends only when
// the SSH transfer protocol (gitfleet.LFSTransfer) is not offered. gitfleet
// serves Git LFS over SSH only: after the same authorization as the transfer, it
// answers with a message saying so and exit status 1.
const CommandLFSAuthenticate gitfleet.Service = "git-lfs-authenticate"

// MaxCommandLength bounds the exec request a client may send; longer ones are refused
// before any parsing.
const MaxCommandLength = 4096

// Command is a parsed exec request.
type Command struct {
	// Service is gitfleet.UploadPack, gitfleet.ReceivePack, gitfleet.UploadArchive
	// or CommandWhoami.
	Service gitfleet.Service
	// Repo is the repository, validated and normalised; zero for whoami.
	Repo gitfleet.RepoName
	// LFSOperation, for gitfleet.LFSTransfer and CommandLFSAuthenticate, is
	// gitfleet.LFSUpload or gitfleet.LFSDownload.
	LFSOperation string
}

// Access is the access a service needs: git-upload-pack, git-upload-archive and
// a Git LFS download read; git-receive-pack and a Git LFS upload write.
func (c Command) Access() Access {
	if c.Request(0).Writes() || (c.Service == CommandLFSAuthenticate && c.LFSOperation == gitfleet.LFSUpload) {
		return AccessWrite
	}
	return AccessRead
}

// Request returns the git request a GitBackend receives for the command, with the
// wire protocol version the client asked for (see gitfleet.ParseProtocol).
func (c Command) Request(protocol int) gitfleet.GitRequest {
	return gitfleet.GitRequest{Service: c.Service, Repo: c.Repo, Protocol: protocol, LFSOperation: c.LFSOperation}
}

// ParseCommand parses the command line of an exec request as git sends it, such as
// "git-upload-pack '/PROJ/repo.git'", and validates the repository path with
// gitfleet.ParseRepoPath. It accepts "whoami", the three git services in dashed or
// spaced spelling, and one argument either single-quoted the way git quotes it
// ('a'\”b' for a'b) or bare. Anything else, including control characters, extra
// arguments, options and shell syntax, is an error wrapping ErrUnknownCommand,
// ErrBadQuoting or ErrBadRepoPath (which is gitfleet.ErrInvalidName).
func ParseCommand(line string) (Command, error) {
	if len(line) > MaxCommandLength {
		return Command{}, fmt.Errorf("%w: command longer than %d bytes", ErrUnknownCommand, MaxCommandLength)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c == 0x7f {
			// In the command's name (before the first space) nothing can be a
			// command we run: "whoami\x00id" is an unknown command, not a bad path.
			if !strings.Contains(line[:i], " ") {
				return Command{}, fmt.Errorf("%w: control character in command %q", ErrUnknownCommand, printable(line[:i]))
			}
			return Command{}, fmt.Errorf("%w: control character in command", ErrBadQuoting)
		}
	}
	if line == string(CommandWhoami) {
		return Command{Service: CommandWhoami}, nil
	}
	if name, rest, ok := strings.Cut(line, " "); ok && (name == string(gitfleet.LFSTransfer) || name == string(CommandLFSAuthenticate)) {
		return parseLFSCommand(gitfleet.Service(name), rest)
	}
	name, arg, ok := strings.Cut(line, " ")
	if name == "git" && ok {
		var sub string
		sub, arg, ok = strings.Cut(arg, " ")
		name = "git-" + sub
	}
	service, err := gitfleet.ParseService(name)
	if err != nil {
		return Command{}, fmt.Errorf("%w: %q", ErrUnknownCommand, printable(name))
	}
	if !ok {
		return Command{}, fmt.Errorf("%w: %s needs a repository argument", ErrBadRepoPath, name)
	}
	path, err := unquote(arg)
	if err != nil {
		return Command{}, err
	}
	repo, err := gitfleet.ParseRepoPath(path)
	if err != nil {
		return Command{}, err
	}
	return Command{Service: service, Repo: repo}, nil
}

// parseLFSCommand parses the arguments of git-lfs-transfer and
// git-lfs-authenticate: the repository path (bare, as git-lfs sends it, or
// single-quoted) and the operation, upload or download.
func parseLFSCommand(service gitfleet.Service, args string) (Command, error) {
	i := strings.LastIndexByte(args, ' ')
	if i < 0 {
		return Command{}, fmt.Errorf("%w: %s needs a repository and an operation", ErrBadRepoPath, service)
	}
	op := args[i+1:]
	if op != gitfleet.LFSUpload && op != gitfleet.LFSDownload {
		return Command{}, fmt.Errorf("%w: %s operation %q (want upload or download)", ErrUnknownCommand, service, printable(op))
	}
	path, err := unquote(args[:i])
	if err != nil {
		return Command{}, err
	}
	repo, err := gitfleet.ParseRepoPath(path)
	if err != nil {
		return Command{}, err
	}
	return Command{Service: service, Repo: repo, LFSOperation: op}, nil
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

// printable shortens s and escapes what a log line should not carry verbatim.
func printable(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
