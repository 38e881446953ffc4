package keys_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age/armor"

	"github.com/wschat/wschat/keys"
)

// Every parser is fuzzed with two targets: one on the raw input, and one
// that fixes up the checksum first, so that the fuzzer also reaches what
// lies behind it. For every accepted input, encoding what was parsed must
// give back the same bytes.

func FuzzParseInvite(f *testing.F) {
	relay := testRelay(f)
	good := mustInvite(f, alice(f), "alice", relay).String()
	f.Add(good)
	f.Add(mustInvite(f, bob(f), "bob", "").String())
	f.Add(good[:len(good)-10])
	f.Add(strings.ToLower(good))
	f.Add("WSCHAT2-" + good[len(keys.InvitePrefix):])
	f.Add(keys.InvitePrefix)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := keys.ParseInvite(s)
		if err != nil {
			return
		}
		if out := inv.String(); out != s {
			t.Fatalf("ParseInvite(%q).String() = %q", s, out)
		}
	})
}

func FuzzInvitePayload(f *testing.F) {
	for _, inv := range []keys.Invite{
		mustInvite(f, alice(f), "alice", testRelay(f)),
		mustInvite(f, bob(f), "bob", ""),
	} {
		p := keys.InvitePayload(inv)
		f.Add(p[:len(p)-4])
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		s := encodePayload(p)
		inv, err := keys.ParseInvite(s)
		if err != nil {
			return
		}
		if out := inv.String(); out != s {
			t.Fatalf("ParseInvite(%q).String() = %q", s, out)
		}
	})
}

func FuzzParseIdentity(f *testing.F) {
	good, err := keys.MarshalIdentity(aliceFile(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add([]byte(armor.Header + "\n"))
	f.Add(bytes.Replace(good, []byte(" v1"), []byte(" v2"), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := keys.ParseIdentity(b)
		if err != nil {
			return
		}
		if out, err := keys.MarshalIdentity(id); err != nil || !bytes.Equal(out, b) {
			t.Fatalf("MarshalIdentity(ParseIdentity(%q)) = %q, %v", b, out, err)
		}
	})
}

func FuzzIdentityBody(f *testing.F) {
	for _, id := range []*keys.IdentityFile{aliceFile(f), {Identity: bob(f), Name: "bob"}} {
		good, err := keys.MarshalIdentity(id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(good[:bytes.Index(good, []byte("check: "))])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b := keys.AppendCheckLine(bytes.Clone(body), keys.ContextIdentityFileCheck)
		id, err := keys.ParseIdentity(b)
		if err != nil {
			return
		}
		if out, err := keys.MarshalIdentity(id); err != nil || !bytes.Equal(out, b) {
			t.Fatalf("MarshalIdentity(ParseIdentity(%q)) = %q, %v", b, out, err)
		}
	})
}

// goldenContacts is the committed contacts vector's body.
func goldenContacts(f *testing.F) []byte {
	data, err := os.ReadFile(filepath.Join("testdata", "contacts.txt"))
	if err != nil {
		f.Fatal(err)
	}
	_, body, err := parseVector(data)
	if err != nil {
		f.Fatal(err)
	}
	return body
}

func FuzzContactsFile(f *testing.F) {
	good := goldenContacts(f)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(keys.MarshalContacts(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := keys.ParseContacts(b)
		if err != nil {
			return
		}
		if out := keys.MarshalContacts(cs); !bytes.Equal(out, b) {
			t.Fatalf("MarshalContacts(ParseContacts(%q)) = %q", b, out)
		}
	})
}

func FuzzContactsBody(f *testing.F) {
	good := goldenContacts(f)
	f.Add(good[:bytes.Index(good, []byte("check: "))])
	f.Add([]byte("wschat-contacts v1\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		b := keys.AppendCheckLine(bytes.Clone(body), keys.ContextContactsFileCheck)
		cs, err := keys.ParseContacts(b)
		if err != nil {
			return
		}
		if out := keys.MarshalContacts(cs); !bytes.Equal(out, b) {
			t.Fatalf("MarshalContacts(ParseContacts(%q)) = %q", b, out)
		}
	})
}
