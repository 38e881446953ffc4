package keys

import "os"

// Unexported parts, exported to the external test package.
var (
	ParseContacts      = parseContacts
	MarshalContacts    = marshalContacts
	ParseInvitePayload = parseInvitePayload
	AppendCheckLine    = appendCheckLine
)

// InvitePayload is the binary payload String encodes.
func InvitePayload(inv Invite) []byte { return inv.payload() }

// SetWriteTemp replaces the write into the temporary file until restore is
// called, to inject write failures.
func SetWriteTemp(f func(*os.File, []byte) error) (restore func()) {
	old := writeTemp
	writeTemp = f
	return func() { writeTemp = old }
}
