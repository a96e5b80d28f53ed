package props

// HomeEnv is the environment variable that names a node's home directory.
const HomeEnv = "GITFLEET_HOME"

// DefaultHome is the home directory used when neither a flag nor HomeEnv names one.
const DefaultHome = "./gitfleet-home"

// HomeDir returns a node's home directory: flagValue (the -home flag) if not
// empty, else the value of GITFLEET_HOME from lookupEnv (os.LookupEnv, or nil
// for no environment) if not empty, else "./gitfleet-home".
func HomeDir(flagValue string, lookupEnv func(string) (string, bool)) string {
	if flagValue != "" {
		return flagValue
	}
	if lookupEnv != nil {
		if v, ok := lookupEnv(HomeEnv); ok && v != "" {
			return v
		}
	}
	return DefaultHome
}
