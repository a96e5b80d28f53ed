package mesh

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The defaults of StoreConfig's limits on push options.
const (
	// DefaultMaxPushOptions is how many push options (git push -o) a push may
	// carry unless StoreConfig.MaxPushOptions says otherwise.
	DefaultMaxPushOptions = 32
	// DefaultMaxPushOptionsBytes is how many bytes a push's options may hold in
	// all unless StoreConfig.MaxPushOptionsBytes says otherwise.
	DefaultMaxPushOptionsBytes = 4096
)

// CertNonceSlop is the receive.certNonceSlop the store runs receive-pack with: a
// push certificate whose nonce was issued by a receive-pack of the same
// repository at most this many seconds earlier still counts as "OK". Over SSH the
// nonce always comes from the receive-pack the certificate is sent to, so this
// matters only to clients that reconnect between advertisement and push.
const CertNonceSlop = 30

// PushInfo is what a push carried besides its ref updates: its push options
// (git push -o) and its push certificate (git push --signed). The store records
// them in the push's pre-receive hook and sets Event.Push on every EventRefsChanged
// the push commits; a push with neither options nor a certificate has no PushInfo.
type PushInfo struct {
	// Options are the push options in the order the client sent them. git's own
	// client sends each -o value as is ("ci.skip", "key=value").
	Options []string `json:"options,omitempty"`
	// Cert is the push certificate, when the client signed the push.
	Cert *PushCert `json:"cert,omitempty"`
}

// PushCert is a push certificate (git push --signed) as git's receive-pack
// reports it to its hooks: the certificate itself, and what checking its
// signature (with gpg, against StoreConfig.SignedPushKeyring) and its nonce found.
type PushCert struct {
	// Text is the certificate as the client sent it: the "certificate version
	// 0.1" header (pusher, pushee, nonce, push options), the ref updates, and
	// the detached OpenPGP signature.
	Text string `json:"text"`
	// Signer is the signing key's user id as gpg reports it for a signature it
	// could check ("A U Thor <author@example.com>"), else empty.
	Signer string `json:"signer,omitempty"`
	// Key is the signing key's id, when gpg could read it from the signature.
	Key string `json:"key,omitempty"`
	// Status is git's letter for the signature (GIT_PUSH_CERT_STATUS): "G"
	// good, "B" bad, "U" good but of unknown validity, "X" good but expired,
	// "Y" good but made by an expired key, "R" good but made by a revoked key,
	// "E" cannot be checked (the keyring lacks the key, or there is no
	// keyring), "N" no signature.
	Status string `json:"status"`
	// Nonce is the nonce the certificate holds.
	Nonce string `json:"nonce,omitempty"`
	// NonceStatus is git's verdict on the nonce (GIT_PUSH_CERT_NONCE_STATUS):
	// "OK" (the one this server issued), "SLOP" (issued earlier, beyond
	// CertNonceSlop), "BAD", "MISSING" or "UNSOLICITED".
	NonceStatus string `json:"nonceStatus"`
}

// Verified reports whether the certificate's signature is good (Status "G")
// and its nonce is the one this server issued (NonceStatus "OK"): what a
// repository that requires signed pushes accepts.
func (c *PushCert) Verified() bool {
	return c != nil && c.Status == "G" && c.NonceStatus == "OK"
}

// The environment through which the store configures the pre-receive hook.
const (
	pushEnv            = "GITFLEET_PUSH"               // where the hook reports
	pushMaxEnv         = "GITFLEET_PUSH_OPTIONS_MAX"   // at most this many push options
	pushMaxBytesEnv    = "GITFLEET_PUSH_OPTIONS_BYTES" // of at most this many bytes in all
	requireSignedEnv   = "GITFLEET_REQUIRE_SIGNED"     // "1": refuse a push without a verified certificate
	certSeedFile       = "push-cert-seed"              // in <root>/.mesh: receive.certNonceSeed
	emptyKeyringDir    = "gnupg"                       // in <root>/.mesh: GNUPGHOME without a keyring
	pushReportSuffix   = ".push"                       // spool + this: the hook's report
	pushCertSuffix     = ".push.cert"                  // spool + this: the certificate's text
	preReceiveHook     = "pre-receive"                 // <root>/.mesh/hooks/<this>
	postReceiveHook    = "post-receive"                // <root>/.mesh/hooks/<this>
	receiveHooksDir    = "hooks"                       // in <root>/.mesh: receive-pack's core.hooksPath
	refTransactionHook = "reference-transaction"
)

// preReceiveScript is receive-pack's pre-receive hook, <root>/.mesh/hooks/pre-receive
// (POSIX sh, using test, printf, read and git cat-file; see receiveHooks). git
// runs it once per push, after the pack has arrived and been checked and before
// any ref is written, so a push it refuses changes no ref; git gives push
// options and the push certificate's status only to the pre-receive and
// post-receive hooks, in their environment. For a receive-pack started by the
// store (GITFLEET_PUSH set) it
//
//   - refuses more than GITFLEET_PUSH_OPTIONS_MAX options, options of more than
//     GITFLEET_PUSH_OPTIONS_BYTES bytes in all, and an option holding a line
//     break (git's client cannot send one);
//   - with GITFLEET_REQUIRE_SIGNED, refuses a push without a certificate, or
//     with one whose signature is not good ("G") or whose nonce is not "OK";
//   - writes the options and the certificate's status to $GITFLEET_PUSH, one
//     "<key> <value>" line each, and the certificate's text to
//     $GITFLEET_PUSH.cert (from the object receive-pack stored it in);
//   - last, under a gate (GITFLEET_LOCK), asks for the repository's write lock
//     on descriptor 4 and waits for "ok" on descriptor 3 (see refGate): from
//     here until the post-receive hook reports, the push's ref updates are the
//     only writer, and readers wait.
//
// Its messages reach the pushing client on stderr ("remote: error: ..."), and git
// reports each ref as "pre-receive hook declined".
const preReceiveScript = `#!/bin/sh
# gitfleet: check a push's options and certificate, and report them to the store.
test -n "$` + pushEnv + `" || exit 0
LC_ALL=C
export LC_ALL
refuse() {
	echo "error: $*" >&2
	exit 1
}
max=${` + pushMaxEnv + `:-32}
maxbytes=${` + pushMaxBytesEnv + `:-4096}
n=${GIT_PUSH_OPTION_COUNT:-0}
case $n in ''|*[!0-9]*) refuse "malformed push option count" ;; esac
test "$n" -le "$max" || refuse "too many push options ($n): this server accepts at most $max"
nl='
'
total=0
i=0
while test "$i" -lt "$n"; do
	eval "v=\${GIT_PUSH_OPTION_$i}"
	case $v in *"$nl"*) refuse "push option $((i + 1)) holds a line break" ;; esac
	total=$((total + ${#v}))
	test "$total" -le "$maxbytes" || refuse "push options too large: this server accepts at most $maxbytes bytes of them in all"
	i=$((i + 1))
done
if test -n "$` + requireSignedEnv + `"; then
	test -n "$GIT_PUSH_CERT" || refuse "this repository requires signed pushes: use git push --signed"
	case $GIT_PUSH_CERT_STATUS in
	G) ;;
	B) refuse "this repository requires signed pushes: the push certificate's signature is bad" ;;
	E) refuse "this repository requires signed pushes: the push certificate's signature cannot be checked (key ${GIT_PUSH_CERT_KEY:-unknown} is not in this server's keyring)" ;;
	*) refuse "this repository requires signed pushes: the push certificate's signature was not accepted (status $GIT_PUSH_CERT_STATUS)" ;;
	esac
	test "$GIT_PUSH_CERT_NONCE_STATUS" = OK || refuse "this repository requires signed pushes: the push certificate's nonce was not accepted (status $GIT_PUSH_CERT_NONCE_STATUS); push again"
fi
{
	i=0
	while test "$i" -lt "$n"; do
		eval "v=\${GIT_PUSH_OPTION_$i}"
		printf 'option %s\n' "$v"
		i=$((i + 1))
	done
	if test -n "$GIT_PUSH_CERT"; then
		printf 'cert-status %s\n' "$GIT_PUSH_CERT_STATUS"
		printf 'cert-nonce-status %s\n' "$GIT_PUSH_CERT_NONCE_STATUS"
		printf 'cert-nonce %s\n' "$GIT_PUSH_CERT_NONCE"
		printf 'cert-signer %s\n' "$GIT_PUSH_CERT_SIGNER"
		printf 'cert-key %s\n' "$GIT_PUSH_CERT_KEY"
	fi
} >"$` + pushEnv + `" || exit 1
if test -n "$GIT_PUSH_CERT"; then
	git cat-file blob "$GIT_PUSH_CERT" >"$` + pushEnv + `.cert" || exit 1
fi
test -n "$` + lockEnv + `" || exit 0
echo prepared >&4 || exit 1
read -r answer <&3 || refuse "the store is gone; nothing was written"
test "$answer" = ok || refuse "the repository is no longer available; nothing was written"
`

// postReceiveScript is receive-pack's post-receive hook,
// <root>/.mesh/hooks/post-receive (POSIX sh, using cat and echo). git runs it
// once per push, after the ref updates, whenever at least one succeeded, with
// one "<old> <new> <ref>" line per updated ref on its standard input. It
// appends them and a "." terminator to the push's spool ($GITFLEET_EVENTS) as
// one transaction, and under a gate tells the store "committed" on descriptor 4,
// which publishes the push's event and releases the write lock. It reports
// "committed" even when the spool could not be written, so the store finds the
// transaction incomplete (EventGap) instead of waiting for the push to end.
const postReceiveScript = `#!/bin/sh
# gitfleet: report a push's ref updates to the store and release its lock.
test -n "$` + eventsEnv + `" || exit 0
{ cat && echo .; } >>"$` + eventsEnv + `"
status=$?
test -z "$` + lockEnv + `" || echo committed >&4
exit $status
`

// receiveHooks returns the hooks of every receive-pack the store starts. They
// live in <root>/.mesh/hooks, written when the store opens, and reach
// receive-pack as core.hooksPath (see receivePackEnv), so a push runs two hook
// processes whatever the number of refs it updates: git has no
// reference-transaction hook there, which it would run two or three times per
// ref of a push without --atomic (each ref is a transaction of its own).
func receiveHooks() []struct{ name, script string } {
	return []struct{ name, script string }{
		{preReceiveHook, preReceiveScript},
		{postReceiveHook, postReceiveScript},
	}
}

// repoHooks returns the hooks the store writes into every repository: at
// creation, and into a repository made by an older store when it first serves a
// push or fetch there (see installHooks). Only the reference-transaction hook,
// which reports a fetch's transactions: receive-pack runs the store's own hooks
// (see receiveHooks).
func repoHooks() []struct{ name, script string } {
	return []struct{ name, script string }{
		{refTransactionHook, hookScript},
	}
}

// installHooks brings a repository's hooks up to date (see writeHooks).
func installHooks(dir string) {
	writeHooks(filepath.Join(dir, "hooks"), repoHooks())
}

// writeHooks writes hooks into dir, each that differs replaced by a rename so
// that a git process never runs half a script. It returns the first error.
func writeHooks(dir string, hooks []struct{ name, script string }) error {
	var first error
	for _, h := range hooks {
		path := filepath.Join(dir, h.name)
		if cur, err := os.ReadFile(path); err == nil && string(cur) == h.script {
			continue
		}
		tmp := path + ".new"
		err := os.WriteFile(tmp, []byte(h.script), 0o755)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// readPushReport reads what the pre-receive hook recorded for a push (see
// preReceiveScript): nil when the push carried neither options nor a
// certificate, or when the hook did not run.
func readPushReport(spool string) (*PushInfo, error) {
	data, err := os.ReadFile(spool + pushReportSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	info, err := parsePushReport(data)
	if err != nil || info == nil || info.Cert == nil {
		return info, err
	}
	text, err := os.ReadFile(spool + pushCertSuffix)
	if err != nil {
		return info, err
	}
	info.Cert.Text = string(text)
	return info, nil
}

// parsePushReport parses the hook's "<key> <value>" lines. Unknown keys are
// skipped; a certificate without a status is malformed.
func parsePushReport(data []byte) (*PushInfo, error) {
	info := &PushInfo{}
	var cert PushCert
	hasCert := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		key, value, _ := strings.Cut(sc.Text(), " ")
		switch key {
		case "option":
			info.Options = append(info.Options, value)
		case "cert-status":
			cert.Status, hasCert = value, true
		case "cert-nonce-status":
			cert.NonceStatus = value
		case "cert-nonce":
			cert.Nonce = value
		case "cert-signer":
			cert.Signer = value
		case "cert-key":
			cert.Key = value
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mesh: push report: %w", err)
	}
	if hasCert {
		if cert.Status == "" {
			return nil, errors.New("mesh: push report: a certificate without a status")
		}
		info.Cert = &cert
	}
	if len(info.Options) == 0 && info.Cert == nil {
		return nil, nil
	}
	return info, nil
}

// receivePackEnv returns the environment a receive-pack runs with beyond the
// request's: the push options and certificates it advertises (configured through
// GIT_CONFIG_COUNT, so that neither repositories' config files nor argv hold the
// nonce seed), the keyring gpg verifies certificates against, and the
// pre-receive hook's report file and limits. A store that cannot keep a nonce
// seed serves pushes without certificates and logs why.
func (s *Store) receivePackEnv(spool string, requireSigned bool) []string {
	config := [][2]string{{"core.hooksPath", filepath.Join(s.root, metaDir, receiveHooksDir)}}
	if s.maxPushOptions >= 0 {
		config = append(config, [2]string{"receive.advertisePushOptions", "true"})
	}
	seed, err := s.certSeed()
	if err != nil {
		s.log.Error("mesh: no push certificate nonce seed; signed pushes are not offered", "err", err)
	} else {
		config = append(config, [2]string{"receive.certNonceSeed", seed},
			[2]string{"receive.certNonceSlop", strconv.Itoa(CertNonceSlop)})
	}
	env := []string{"GIT_CONFIG_COUNT=" + strconv.Itoa(len(config))}
	for i, kv := range config {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	if keyring, err := s.keyring(); err != nil {
		s.log.Error("mesh: no keyring for push certificates", "err", err)
	} else {
		env = append(env, "GNUPGHOME="+keyring)
	}
	env = append(env,
		pushEnv+"="+spool+pushReportSuffix,
		pushMaxEnv+"="+strconv.Itoa(max(s.maxPushOptions, 0)),
		pushMaxBytesEnv+"="+strconv.Itoa(s.maxPushOptionsBytes),
	)
	if requireSigned {
		env = append(env, requireSignedEnv+"=1")
	}
	return env
}

// keyring returns the GnuPG home git verifies push certificates with: the
// configured keyring, else an empty one in the store's own directory, so that a
// certificate is reported with its key id and status "E" (cannot be checked)
// rather than gpg looking for a home of its own.
func (s *Store) keyring() (string, error) {
	if s.signedPushKeyring != "" {
		return s.signedPushKeyring, nil
	}
	dir := filepath.Join(s.root, metaDir, emptyKeyringDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}

// certSeed returns the secret receive-pack derives push certificate nonces from
// (receive.certNonceSeed). It is kept in <root>/.mesh/push-cert-seed, created
// with mode 0600 on first use, so that nonces stay valid across restarts of the
// store.
func (s *Store) certSeed() (string, error) {
	s.seedMu.Lock()
	defer s.seedMu.Unlock()
	if s.seed != "" {
		return s.seed, nil
	}
	path := filepath.Join(s.root, metaDir, certSeedFile)
	data, err := os.ReadFile(path)
	if err == nil {
		if seed := strings.TrimSpace(string(data)); len(seed) >= 32 && isHex(seed) {
			s.seed = seed
			return seed, nil
		}
		s.log.Warn("mesh: replacing a malformed push certificate nonce seed", "file", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	seed := hex.EncodeToString(b)
	f, err := os.CreateTemp(filepath.Dir(path), certSeedFile+"-")
	if err != nil {
		return "", err
	}
	_, werr := f.WriteString(seed + "\n")
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o600) // CreateTemp's mode already; explicit for the record
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return "", werr
	}
	s.seed = seed
	return seed, nil
}
