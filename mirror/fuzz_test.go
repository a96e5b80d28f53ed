package mirror

import (
	"encoding/json"
	"github.com/gitfleet/gitfleet"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// FuzzRequestBodies decodes every request body the upstream accepts (kind 0:
// registration, 1: accept, 2: authenticate) and validates it. Decoding must not
// panic, and a body that validates must survive an encode/decode round trip.
func FuzzRequestBodies(f *testing.F) {
	f.Add(uint8(0), []byte(`{"id":"0b8a7a2e-8f5e-4c57-9a57-3f6f2f4e0d11","name":"m","baseUrl":"https://mirror.example.org","publicKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcx0mB0qf7n6Rk1fQqQb2Ybb3G5nY3rJcV9a5wzq0Ea"}`))
	f.Add(uint8(1), []byte(`{"mirroringMode":"SELECTED_PROJECTS","projects":["PROJ","B_2"]}`))
	f.Add(uint8(1), []byte(`{"mirroringMode":"ALL_PROJECTS"}`))
	f.Add(uint8(2), []byte(`{"publicKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcx0mB0qf7n6Rk1fQqQb2Ybb3G5nY3rJcV9a5wzq0Ea","project":"PROJ","slug":"repo"}`))
	f.Add(uint8(0), []byte(`{"id":1}`))
	f.Add(uint8(2), []byte(`{} {}`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		var v any
		var validate func() error
		switch kind % 3 {
		case 0:
			r := new(RegisterRequest)
			v, validate = r, func() error { _, err := validateRegister(r, gitfleet.KeyPolicy{}); return err }
		case 1:
			r := new(AcceptRequest)
			v, validate = r, func() error {
				if r.MirroringMode != ModeAllProjects && r.MirroringMode != ModeSelectedProjects {
					return ErrSetup
				}
				_, err := normaliseProjects(r.Projects)
				return err
			}
		case 2:
			r := new(AuthRequest)
			v, validate = r, func() error { _, err := validateAuth(r); return err }
		}
		if err := decodeJSON(data, v); err != nil {
			return
		}
		if validate() != nil {
			return
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		w := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := decodeJSON(again, w); err != nil {
			t.Fatalf("re-decode %s: %v", again, err)
		}
		if !reflect.DeepEqual(normalizeNil(v), normalizeNil(w)) {
			t.Fatalf("round trip changed %#v to %#v", v, w)
		}
	})
}

// normalizeNil maps an AcceptRequest's empty project list to nil, which
// omitempty does too.
func normalizeNil(v any) any {
	if a, ok := v.(*AcceptRequest); ok && len(a.Projects) == 0 {
		c := *a
		c.Projects = nil
		return &c
	}
	return v
}

// FuzzSignedHeaders parses the signing headers and verifies them against a fixed
// request; nothing may panic, and garbage never verifies.
func FuzzSignedHeaders(f *testing.F) {
	f.Add("0b8a7a2e-8f5e-4c57-9a57-3f6f2f4e0d11", "1700000000", "00112233445566778899aabbccddeeff", "AAAAC3NzaC1lZDI1NTE5")
	f.Add("", "", "", "")
	f.Add("x", "-1", "zz", "!!")
	key := testKey(f)
	f.Fuzz(func(t *testing.T, id, ts, nonce, sig string) {
		r, _ := http.NewRequest(http.MethodGet, "https://u.example/rest/mirroring/1.0/repos", nil)
		r.Header.Set(HeaderMirror, id)
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderNonce, nonce)
		r.Header.Set(HeaderSignature, sig)
		h, err := parseSignedHeaders(r)
		if err != nil {
			return
		}
		if h.verify(key.PublicKey(), http.MethodGet, "/rest/mirroring/1.0/repos", nil, time.Unix(h.timestamp, 0)) == nil {
			t.Fatalf("arbitrary headers verified: %q %q %q %q", id, ts, nonce, sig)
		}
	})
}
