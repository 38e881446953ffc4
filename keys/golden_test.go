package keys_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/")

// A vector file in testdata/ is a header of "key: value" lines naming what
// it is and the expected outcome, a blank line, then the body: the exact
// bytes under test. Header keys:
//
//	kind        invite | identity | contacts | safety
//	expect      "ok", or the names of the errors it must match (see vectorErrors)
//	comment     what it is
//	id, nick, relay   for an accepted invite or identity: what it decodes to
//	                  (relay "-" for none)
//	passphrase  for an encrypted identity file
//	names, verified   for an accepted contacts file: contact names, and those verified
//	a, b        for a safety number: the two invites
//
// TestVectors decodes every file in testdata/ forever; TestGoldenVectors
// checks the deterministic ones against what the code writes today, and
// with -update rewrites them.
type vector struct {
	name   string
	header [][2]string
	body   []byte
	stable bool // deterministic: the stored file must be exactly this
}

var vectorErrors = map[string]error{
	"ErrCorrupt":              keys.ErrCorrupt,
	"ErrUnsupportedVersion":   keys.ErrUnsupportedVersion,
	"ErrPassphraseRequired":   keys.ErrPassphraseRequired,
	"ErrWrongPassphrase":      keys.ErrWrongPassphrase,
	"ErrWorkFactor":           keys.ErrWorkFactor,
	"ErrInvitePrefix":         keys.ErrInvitePrefix,
	"ErrInviteVersion":        keys.ErrInviteVersion,
	"ErrInviteEncoding":       keys.ErrInviteEncoding,
	"ErrInviteTruncated":      keys.ErrInviteTruncated,
	"ErrInviteChecksum":       keys.ErrInviteChecksum,
	"ErrInviteInvalid":        keys.ErrInviteInvalid,
	"ErrInvalidNick":          keys.ErrInvalidNick,
	"wire.ErrLowOrderKey":     wire.ErrLowOrderKey,
	"wire.ErrSmallOrderKey":   wire.ErrSmallOrderKey,
	"wire.ErrNonCanonicalKey": wire.ErrNonCanonicalKey,
}

func (v vector) encode() []byte {
	var b bytes.Buffer
	for _, kv := range v.header {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
	}
	b.WriteByte('\n')
	b.Write(v.body)
	return b.Bytes()
}

func parseVector(data []byte) (map[string]string, []byte, error) {
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return nil, nil, errors.New("no blank line after the header")
	}
	hdr := map[string]string{}
	for line := range strings.SplitSeq(string(head), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, nil, fmt.Errorf("header line %q is not key: value", line)
		}
		hdr[k] = v
	}
	return hdr, body, nil
}

const seedsComment = "alice: x25519 seed 00..1f, ed25519 seed 20..3f; bob: 60..7f, 80..9f; relay key seed 40..5f"

func generateVectors(t *testing.T) []vector {
	relay := testRelay(t)
	a, b := alice(t), bob(t)
	aliceInv := mustInvite(t, a, "alice", relay)
	bobInv := mustInvite(t, b, "bob", "")
	aPub := a.Public()
	lowOrderX := make([]byte, wire.KeySize)
	lowOrderX[0] = 1
	identityPoint := make([]byte, wire.KeySize)
	identityPoint[0] = 1

	inviteVec := func(name, comment, s, expect string) vector {
		return vector{name: name, stable: true, body: []byte(s + "\n"), header: [][2]string{
			{"kind", "invite"}, {"expect", expect}, {"comment", comment}}}
	}
	okInvite := func(name string, inv keys.Invite) vector {
		v := inviteVec(name, seedsComment, inv.String(), "ok")
		r := inv.Relay
		if r == "" {
			r = "-"
		}
		v.header = append(v.header, [2]string{"id", inv.Public.ID().String()}, [2]string{"nick", inv.Name}, [2]string{"relay", r})
		return v
	}
	good := aliceInv.String()
	typo := []byte(good)
	typo[20] = base32Alphabet[(strings.IndexByte(base32Alphabet, typo[20])+1)%32]

	aliceID := aliceFile(t)
	aliceIDBytes, err := keys.MarshalIdentity(aliceID)
	if err != nil {
		t.Fatal(err)
	}
	noRelay := &keys.IdentityFile{Identity: a, Name: "alice"}
	noRelayBytes, err := keys.MarshalIdentity(noRelay)
	if err != nil {
		t.Fatal(err)
	}
	identityVec := func(name, comment string, body []byte, expect string, extra ...[2]string) vector {
		return vector{name: name, stable: true, body: body, header: append([][2]string{
			{"kind", "identity"}, {"expect", expect}, {"comment", comment}}, extra...)}
	}
	aliceMeta := [][2]string{{"id", aPub.ID().String()}, {"nick", "alice"}, {"relay", relay}}
	flipped := bytes.Clone(aliceIDBytes)
	flipped[bytes.Index(flipped, []byte("x25519: "))+12] ^= 0x01

	const pw = "correct horse battery staple"
	encPath := filepath.Join(t.TempDir(), "identity")
	if err := keys.Save(encPath, aliceID, keys.SaveOptions{Passphrase: []byte(pw), WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	encrypted, err := os.ReadFile(encPath)
	if err != nil {
		t.Fatal(err)
	}

	clk := newClock()
	book := openBook(t, filepath.Join(t.TempDir(), "contacts"), clk)
	for _, step := range []func() error{
		func() error { _, err := book.Add("alice", aliceInv); return err },
		func() error { _, err := book.Add("bob", bobInv); return err },
		func() error { _, err := book.Verify("bob"); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	contacts, err := os.ReadFile(book.Path())
	if err != nil {
		t.Fatal(err)
	}
	contactsVec := func(name, comment string, body []byte, expect string, extra ...[2]string) vector {
		return vector{name: name, stable: true, body: body, header: append([][2]string{
			{"kind", "contacts"}, {"expect", expect}, {"comment", comment}}, extra...)}
	}

	vs := []vector{
		okInvite("invite_alice.txt", aliceInv),
		okInvite("invite_alice_norelay.txt", mustInvite(t, a, "alice", "")),
		okInvite("invite_bob.txt", bobInv),
		inviteVec("invite_typo.txt", "invite_alice.txt with one character changed", string(typo), "ErrInviteChecksum"),
		inviteVec("invite_truncated.txt", "invite_alice.txt without its last 10 characters", good[:len(good)-10], "ErrInviteTruncated"),
		inviteVec("invite_version2.txt", "invite_alice.txt with the prefix of a future version", "WSCHAT2-"+good[len(keys.InvitePrefix):], "ErrInviteVersion"),
		inviteVec("invite_low_order_x25519.txt", "alice's Ed25519 key with the X25519 key u=1 (order 4), valid checksum",
			rawInvite(lowOrderX, aPub.Ed[:], "eve", ""), "ErrInviteInvalid wire.ErrLowOrderKey"),
		inviteVec("invite_small_order_ed25519.txt", "alice's X25519 key with the Ed25519 identity point 0100..00, valid checksum",
			rawInvite(aPub.X[:], identityPoint, "eve", ""), "ErrInviteInvalid wire.ErrSmallOrderKey"),

		identityVec("identity_alice.txt", seedsComment, aliceIDBytes, "ok", aliceMeta...),
		identityVec("identity_alice_norelay.txt", seedsComment, noRelayBytes, "ok",
			[2]string{"id", aPub.ID().String()}, [2]string{"nick", "alice"}, [2]string{"relay", "-"}),
		identityVec("identity_bitflip.txt", "identity_alice.txt with one bit of the x25519 seed flipped", flipped, "ErrCorrupt"),
		identityVec("identity_truncated.txt", "identity_alice.txt without its check line",
			aliceIDBytes[:bytes.Index(aliceIDBytes, []byte("check: "))], "ErrCorrupt"),
		identityVec("identity_version2.txt", "identity_alice.txt claiming a future version",
			bytes.Replace(aliceIDBytes, []byte(" v1\n"), []byte(" v2\n"), 1), "ErrUnsupportedVersion"),

		contactsVec("contacts.txt", "alice (with relay) added, then bob, then bob verified; "+seedsComment,
			contacts, "ok", [2]string{"names", "alice bob"}, [2]string{"verified", "bob"}),
		contactsVec("contacts_edited.txt", "contacts.txt with bob's nickname edited",
			bytes.Replace(contacts, []byte("\tbob\n"), []byte("\tbot\n"), 1), "ErrCorrupt"),

		{name: "safety_alice_bob.txt", stable: true, body: []byte(keys.SafetyNumber(aPub, b.Public()) + "\n"),
			header: [][2]string{{"kind", "safety"}, {"expect", "ok"}, {"comment", seedsComment},
				{"a", aliceInv.String()}, {"b", bobInv.String()}}},

		// age output is randomized: these are written once and then only
		// decoded.
		{name: "identity_alice_encrypted.txt", body: encrypted, header: append([][2]string{
			{"kind", "identity"}, {"expect", "ok"}, {"comment", "identity_alice.txt, age scrypt work factor 10"},
			{"passphrase", pw}}, aliceMeta...)},
		{name: "identity_wrong_passphrase.txt", body: encrypted, header: [][2]string{
			{"kind", "identity"}, {"expect", "ErrWrongPassphrase"}, {"comment", "identity_alice.txt, age scrypt"},
			{"passphrase", "incorrect horse"}}},
		{name: "identity_work_factor.txt", body: withWorkFactor(t, encrypted, "30"), header: [][2]string{
			{"kind", "identity"}, {"expect", "ErrWorkFactor"}, {"comment", "an age scrypt stanza asking for 2^30"},
			{"passphrase", pw}}},
	}
	return vs
}

func TestGoldenVectors(t *testing.T) {
	for _, v := range generateVectors(t) {
		path := filepath.Join("testdata", v.name)
		stored, err := os.ReadFile(path)
		if *update && (v.stable || err != nil || checkVectorFile(t, stored) != nil) {
			if err := os.WriteFile(path, v.encode(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v (run: go test ./keys -run TestGoldenVectors -update)", err)
			continue
		}
		if v.stable && !bytes.Equal(stored, v.encode()) {
			t.Errorf("%s: the code now writes\n%s\nIf the format change is intended, run: go test ./keys -run TestGoldenVectors -update",
				path, v.encode())
		}
	}
}

func TestVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in testdata/ (%v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkVectorFile(t, data); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// checkVectorFile decodes one vector and checks it has the expected
// outcome.
func checkVectorFile(t *testing.T, data []byte) error {
	hdr, body, err := parseVector(data)
	if err != nil {
		return err
	}
	var want []error
	if hdr["expect"] != "ok" {
		for _, name := range strings.Fields(hdr["expect"]) {
			e, ok := vectorErrors[name]
			if !ok {
				return fmt.Errorf("unknown expected error %q", name)
			}
			want = append(want, e)
		}
		if len(want) == 0 {
			return errors.New("no expect header")
		}
	}
	line := strings.TrimSuffix(string(body), "\n")
	var (
		gotErr error
		meta   struct{ id, nick, relay string }
	)
	switch hdr["kind"] {
	case "invite":
		var inv keys.Invite
		inv, gotErr = keys.ParseInvite(line)
		if gotErr == nil {
			if s := inv.String(); s != line {
				return fmt.Errorf("re-encoded as %q", s)
			}
			meta.id, meta.nick, meta.relay = inv.Public.ID().String(), inv.Name, inv.Relay
		}
	case "identity":
		path := writeFile(t, "identity", body, 0o600)
		var pp func() ([]byte, error)
		if p, ok := hdr["passphrase"]; ok {
			pp = passphrase(p)
		}
		var f *keys.IdentityFile
		f, gotErr = keys.Load(path, pp)
		if gotErr == nil {
			if pp == nil {
				if out, err := keys.MarshalIdentity(f); err != nil || !bytes.Equal(out, body) {
					return fmt.Errorf("re-encoded differently (%v):\n%s", err, out)
				}
			}
			meta.id, meta.nick, meta.relay = f.Identity.Public().ID().String(), f.Name, f.Relay
		}
	case "contacts":
		var cs []keys.Contact
		if b, err := keys.OpenBook(writeFile(t, "contacts", body, 0o600)); err != nil {
			gotErr = err
		} else if cs, gotErr = b.List(); gotErr == nil {
			var names, verified []string
			for _, c := range cs {
				names = append(names, c.Name)
				if c.Verified {
					verified = append(verified, c.Name)
				}
			}
			if !slices.Equal(names, strings.Fields(hdr["names"])) || !slices.Equal(verified, strings.Fields(hdr["verified"])) {
				return fmt.Errorf("contacts %v, verified %v; header says %q, %q", names, verified, hdr["names"], hdr["verified"])
			}
			if out := keys.MarshalContacts(cs); !bytes.Equal(out, body) {
				return fmt.Errorf("re-encoded differently:\n%s", out)
			}
		}
	case "safety":
		a, err := keys.ParseInvite(hdr["a"])
		if err != nil {
			return err
		}
		b, err := keys.ParseInvite(hdr["b"])
		if err != nil {
			return err
		}
		if got := keys.SafetyNumber(a.Public, b.Public); got != line {
			return fmt.Errorf("safety number %q, vector says %q", got, line)
		}
		if got := keys.SafetyNumber(b.Public, a.Public); got != line {
			return fmt.Errorf("safety number of (b, a) %q, vector says %q", got, line)
		}
	default:
		return fmt.Errorf("unknown kind %q", hdr["kind"])
	}

	if len(want) == 0 {
		if gotErr != nil {
			return fmt.Errorf("want ok, got %v", gotErr)
		}
		if meta.relay == "" {
			meta.relay = "-"
		}
		for k, got := range map[string]string{"id": meta.id, "nick": meta.nick, "relay": meta.relay} {
			if w, ok := hdr[k]; ok && w != got {
				return fmt.Errorf("%s %q, vector says %q", k, got, w)
			}
		}
		return nil
	}
	for _, w := range want {
		if !errors.Is(gotErr, w) {
			return fmt.Errorf("want %s, got %v", hdr["expect"], gotErr)
		}
	}
	return nil
}
