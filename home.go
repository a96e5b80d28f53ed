package gitfleet

import "path/filepath"

// HomeEnv is the environment variable that names a node's home directory.
const HomeEnv = "GITFLEET_HOME"

// DefaultHome is the home directory used when neither a flag nor HomeEnv names one.
const DefaultHome = "./gitfleet-home"

// PropertiesFileName is the name of the properties file in <home>/shared.
const PropertiesFileName = "bitbucket.properties"

// Home is a node's home directory and the layout beneath it, as Bitbucket lays
// out $BITBUCKET_HOME:
//
//	<home>/shared/bitbucket.properties     properties
//	<home>/shared/config/                  host keys, TLS material, secrets (0700)
//	<home>/shared/data/repositories/       bare repositories, <PROJECT>/<slug>.git
//	<home>/shared/data/gitfleet.db         the embedded database
//
// Its methods only compute paths; nothing is created.
type Home string

// ResolveHome returns a node's home directory: flagValue (the -home flag) if not
// empty, else the value of GITFLEET_HOME from lookupEnv (os.LookupEnv, or nil for
// no environment) if not empty, else DefaultHome.
func ResolveHome(flagValue string, lookupEnv func(string) (string, bool)) Home {
	if flagValue != "" {
		return Home(flagValue)
	}
	if lookupEnv != nil {
		if v, ok := lookupEnv(HomeEnv); ok && v != "" {
			return Home(v)
		}
	}
	return DefaultHome
}

// Dir returns the home directory itself.
func (h Home) Dir() string { return string(h) }

// Shared returns <home>/shared.
func (h Home) Shared() string { return filepath.Join(string(h), "shared") }

// PropertiesFile returns <home>/shared/bitbucket.properties.
func (h Home) PropertiesFile() string { return filepath.Join(h.Shared(), PropertiesFileName) }

// ConfigDir returns <home>/shared/config, where host keys, TLS material and other
// secrets live.
func (h Home) ConfigDir() string { return filepath.Join(h.Shared(), "config") }

// DataDir returns <home>/shared/data.
func (h Home) DataDir() string { return filepath.Join(h.Shared(), "data") }

// RepositoriesDir returns <home>/shared/data/repositories, a repository store's
// root.
func (h Home) RepositoriesDir() string { return filepath.Join(h.DataDir(), "repositories") }

// RepoDir returns the directory of one bare repository:
// <home>/shared/data/repositories/<PROJECT>/<slug>.git.
func (h Home) RepoDir(r RepoName) string {
	return filepath.Join(h.RepositoriesDir(), r.Project, r.Slug+".git")
}

// DBFile returns <home>/shared/data/gitfleet.db, the embedded database.
func (h Home) DBFile() string { return filepath.Join(h.DataDir(), "gitfleet.db") }
