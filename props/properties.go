package props

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/gitfleet/gitfleet"
)

// LoadOptions configures Load and LoadFile.
type LoadOptions struct {
	// Environ holds the environment as "NAME=value" strings; nil means
	// os.Environ(). Pass an empty, non-nil slice for no environment at all.
	Environ []string
	// Logger receives a note of which file was read or looked for; nil discards.
	Logger *slog.Logger
}

// Properties is the effective set of raw properties of a node: the file's
// entries with environment overrides applied. Values are kept as written
// (escapes decoded, placeholders not resolved); Resolve and Config resolve
// placeholders. A Properties is safe for concurrent reads.
type Properties struct {
	path    string
	file    *File // nil when the file does not exist
	entries map[string]Entry
	env     map[string]string
}

// Load reads the properties file of the node whose home directory is home,
// <home>/shared/bitbucket.properties (gitfleet.Home.PropertiesFile), and
// applies the environment overrides. A missing file is not an error: the defaults serve, and the logger
// is told which file was looked for. An unreadable file or one Java would
// reject is an error naming the file (and line).
func Load(ctx context.Context, home string, opts LoadOptions) (*Properties, error) {
	return LoadFile(ctx, gitfleet.Home(home).PropertiesFile(), opts)
}

// LoadFile is Load for a properties file at any path.
func LoadFile(ctx context.Context, path string, opts LoadOptions) (*Properties, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f, err := ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		logger.InfoContext(ctx, "properties file not found; using defaults and the environment", "path", path)
		f = nil
	case err != nil:
		var pe *ParseError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, errors.New("props: cannot read properties: " + err.Error())
	default:
		logger.InfoContext(ctx, "loaded properties", "path", path, "encoding", f.Encoding().String())
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	p := New(f, environ)
	p.path = path
	return p, nil
}

// New returns the effective properties of f (nil for none) with the overrides
// in environ ("NAME=value" strings) applied. Environment variables are matched
// with Spring Boot's relaxed binding against the known keys and the keys in f;
// they win over the file.
func New(f *File, environ []string) *Properties {
	p := &Properties{file: f, entries: map[string]Entry{}, env: map[string]string{}}
	if f != nil {
		p.path = f.Path
		for _, e := range f.Entries() {
			p.entries[e.Key] = e
		}
	}
	for _, kv := range environ {
		if name, value, ok := strings.Cut(kv, "="); ok {
			p.env[name] = value
		}
	}
	keys := make([]string, 0, len(p.entries)+32)
	var lists []string
	for _, k := range KnownKeys() {
		keys = append(keys, k.Key)
		if k.field.isList {
			lists = append(lists, k.Key)
		}
	}
	for k := range p.entries {
		keys = append(keys, k)
	}
	for key, b := range bindEnvironment(environ, keys, lists) {
		p.entries[key] = Entry{Key: key, Value: b.value, Source: Source{Env: b.name}}
	}
	return p
}

// Path returns the properties file's path (which may not exist).
func (p *Properties) Path() string { return p.path }

// File returns the parsed file for editing and saving, or nil when there was
// none. Edits to it do not change p.
func (p *Properties) File() *File { return p.file }

// Get returns the raw effective value of key.
func (p *Properties) Get(key string) (string, bool) {
	e, ok := p.entries[key]
	return e.Value, ok
}

// Lookup returns the raw effective entry for key, with its source.
func (p *Properties) Lookup(key string) (Entry, bool) {
	e, ok := p.entries[key]
	return e, ok
}

// Entries returns every raw effective entry sorted by key.
func (p *Properties) Entries() []Entry {
	out := make([]Entry, 0, len(p.entries))
	for _, k := range p.sortedKeys() {
		out = append(out, p.entries[k])
	}
	return out
}

func (p *Properties) sortedKeys() []string {
	keys := make([]string, 0, len(p.entries))
	for k := range p.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Resolve returns key's value with its placeholders resolved. found is false
// when the key is not set; an unresolvable placeholder is a *PlaceholderError
// naming the key and its source.
func (p *Properties) Resolve(key string) (value string, found bool, err error) {
	e, ok := p.entries[key]
	if !ok {
		return "", false, nil
	}
	v, err := p.resolver().resolve(e)
	return v, true, err
}

func (p *Properties) resolver() *resolver {
	return &resolver{lookup: p.Lookup, env: p.env}
}

// WriteJSON writes the raw effective entries, sorted by key, as a JSON array
// of {"key", "value", "source"} objects: the file with environment overrides
// applied, no placeholders resolved and no defaults added.
func (p *Properties) WriteJSON(w io.Writer) error {
	type item struct {
		Key    string `json:"key"`
		Value  string `json:"value"`
		Source string `json:"source"`
	}
	items := make([]item, 0, len(p.entries))
	for _, e := range p.Entries() {
		items = append(items, item{e.Key, e.Value, e.Source.String()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(items)
}
