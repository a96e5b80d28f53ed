package mirror

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// MaxSkew is how far a signed request's timestamp may lie from the upstream's
// clock, either way.
const MaxSkew = 2 * time.Minute

// Errors of signature checking; the upstream answers each with 401.
var (
	ErrUnsigned         = errors.New("mirror: request is not signed")
	ErrBadSignature     = errors.New("mirror: signature does not verify")
	ErrSkew             = errors.New("mirror: request timestamp is outside the allowed clock skew")
	ErrReplay           = errors.New("mirror: request nonce was already used")
	ErrUnknownMirror    = errors.New("mirror: unknown or removed mirror")
	ErrWeakSignatureAlg = errors.New("mirror: signature algorithm not accepted")
)

// SigningString returns the text a mirror signs for a request:
// METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nhex(sha256(body)), where PATH?QUERY is the
// request target exactly as sent.
func SigningString(method, target string, timestamp int64, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte(method + "\n" + target + "\n" + strconv.FormatInt(timestamp, 10) + "\n" + nonce + "\n" + hex.EncodeToString(sum[:]))
}

// Sign adds the signing headers for mirror id to req, whose body is body, signing
// with signer at time now. RSA keys sign with rsa-sha2-256.
func Sign(req *http.Request, id string, signer ssh.Signer, body []byte, now time.Time) error {
	var nb [16]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	nonce := hex.EncodeToString(nb[:])
	ts := now.Unix()
	data := SigningString(req.Method, req.URL.RequestURI(), ts, nonce, body)
	var sig *ssh.Signature
	var err error
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA256)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return fmt.Errorf("mirror: sign request: %w", err)
	}
	req.Header.Set(HeaderMirror, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(ssh.Marshal(sig)))
	return nil
}

// signedHeaders are the parsed signing headers of a request.
type signedHeaders struct {
	id        string
	timestamp int64
	nonce     string
	sig       *ssh.Signature
}

// parseSignedHeaders reads the signing headers of r.
func parseSignedHeaders(r *http.Request) (signedHeaders, error) {
	var h signedHeaders
	h.id = r.Header.Get(HeaderMirror)
	ts := r.Header.Get(HeaderTimestamp)
	h.nonce = r.Header.Get(HeaderNonce)
	sig := r.Header.Get(HeaderSignature)
	if h.id == "" || ts == "" || h.nonce == "" || sig == "" {
		return h, ErrUnsigned
	}
	if len(h.nonce) < 16 || len(h.nonce) > 128 || !isHex(h.nonce) {
		return h, fmt.Errorf("%w: malformed nonce", ErrBadSignature)
	}
	var err error
	h.timestamp, err = strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return h, fmt.Errorf("%w: malformed timestamp", ErrBadSignature)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return h, fmt.Errorf("%w: malformed signature encoding", ErrBadSignature)
	}
	h.sig = new(ssh.Signature)
	if err := ssh.Unmarshal(raw, h.sig); err != nil {
		return h, fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	return h, nil
}

// verify checks the signature of h over the request with key pub at time now,
// without consulting the nonce store.
func (h signedHeaders) verify(pub ssh.PublicKey, method, target string, body []byte, now time.Time) error {
	if d := now.Sub(time.Unix(h.timestamp, 0)); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w: off by %s", ErrSkew, d.Round(time.Second))
	}
	if !slices.Contains(gitfleet.SignatureAlgorithms(), h.sig.Format) {
		return fmt.Errorf("%w: %s", ErrWeakSignatureAlg, h.sig.Format)
	}
	if err := pub.Verify(SigningString(method, target, h.timestamp, h.nonce, body), h.sig); err != nil {
		return ErrBadSignature
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
