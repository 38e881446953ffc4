package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/wschat/wschat/bridge"
	"github.com/wschat/wschat/internal/safetext"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/wire"
)

func newContactsCmd(e *env, h *homeFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contacts",
		Short: "The pinned address book: add, list, remove, verify",
		Long: `Contacts are pinned on first use: adding a name records its keys, and a
different key for that name is refused until you have checked it with the
person (exit 4). Compare the safety number out of band to verify a contact.`,
	}
	cmd.AddCommand(newContactsAddCmd(e, h), newContactsListCmd(e, h), newContactsRemoveCmd(e, h), newContactsVerifyCmd(e, h))
	return cmd
}

func openBook(h *homeFlags) (*keys.Book, *keys.IdentityFile, error) {
	f, err := h.loadIdentity()
	if err != nil {
		return nil, nil, err
	}
	b, err := keys.OpenBook(h.contactsPath())
	return b, f, err
}

func newContactsAddCmd(e *env, h *homeFlags) *cobra.Command {
	var replace bool
	cmd := &cobra.Command{
		Use:   "add NAME INVITE",
		Short: "Pin a contact from their invite and print the safety number",
		Example: `  wschat contacts add bob WSCHAT1-R5AMLLNWR4SWESX...
  wschat contacts add --replace bob WSCHAT1-...   # after bob's key changed and you checked with him`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if looksLikeInvite(args[0]) && keys.CheckContactName(args[len(args)-1]) == nil {
				return withHint(usageError{errors.New("the name comes first, then the invite")}, "wschat contacts add NAME INVITE")
			}
			if err := keys.CheckContactName(args[0]); err != nil {
				return usageError{err}
			}
			// An invite wrapped over lines, or split by the shell where it
			// was wrapped, is one invite: white space never appears in one.
			inv, err := keys.ParseInvite(strings.Join(strings.Fields(strings.Join(args[1:], " ")), ""))
			if err != nil {
				return withHint(usageError{err}, "copy the whole invite line again; it starts with WSCHAT1-")
			}
			book, f, err := openBook(h)
			if err != nil {
				return err
			}
			if inv.Public.Equal(f.Identity.Public()) {
				return withHint(usageError{errors.New("that is your own invite")}, "add the invite of the person you want to talk with; yours is for them (wschat invite)")
			}
			var c keys.Contact
			if replace {
				c, err = book.Replace(args[0], inv)
			} else {
				c, err = book.Add(args[0], inv)
			}
			if errors.Is(err, keys.ErrKeyChanged) {
				return withHint(trustError{err}, "if "+args[0]+" really has a new key, compare safety numbers with them, then add again with --replace")
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s\t%s\tsafety number: %s\n", c.Name, c.Public.ID(), keys.SafetyNumber(f.Identity.Public(), c.Public))
			return nil
		},
	}
	cmd.Flags().BoolVar(&replace, "replace", false, "replace the pinned key of an existing contact")
	return cmd
}

type contactJSON struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Nick     string `json:"nick"`
	Relay    string `json:"relay,omitempty"`
	Verified bool   `json:"verified"`
	Added    string `json:"added_at"`
	// LastMessage is when the last text was exchanged with the contact.
	LastMessage string `json:"last_message_at,omitempty"`
}

// lastMessages is, per contact, when the last text was exchanged, if the
// home has a store (nothing otherwise: contacts list needs none).
func lastMessages(ctx context.Context, h *homeFlags) map[wire.Fingerprint]time.Time {
	if _, err := os.Stat(h.storePath()); err != nil {
		return nil
	}
	s, err := bridge.OpenStore(h.storePath(), true)
	if err != nil {
		return nil
	}
	defer s.Close()
	m, _ := s.LastTextTimes(ctx)
	return m
}

func newContactsListCmd(e *env, h *homeFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List contacts: name, routing id, verified, relay, nickname, last message",
		Long: `List the contacts: on a terminal as a table; in a pipe tab-separated with a
header line (NAME ID VERIFIED RELAY NICK LAST MESSAGE); with --json one
object per contact per line.`,
		Example: "  wschat contacts list\n  wschat contacts list --json | jq -r .name",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			book, _, err := openBook(h)
			if err != nil {
				return err
			}
			list, err := book.List()
			if err != nil {
				return err
			}
			last := lastMessages(cmd.Context(), h)
			enc := json.NewEncoder(e.stdout)
			_, tty := terminal(e.stdout)
			var t *table
			if !asJSON {
				t = newTable(e.stdout, tty, "NAME", "ID", "VERIFIED", "RELAY", "NICK", "LAST MESSAGE")
			}
			for _, c := range list {
				at, ok := last[c.Public.Fingerprint()]
				if asJSON {
					j := contactJSON{Name: c.Name, ID: c.Public.ID().String(), Nick: c.Nick, Relay: c.Relay, Verified: c.Verified, Added: c.AddedAt.UTC().Format("2006-01-02T15:04:05Z07:00")}
					if ok {
						j.LastMessage = at.UTC().Format(time.RFC3339)
					}
					enc.Encode(j)
					continue
				}
				v := "unverified"
				if c.Verified {
					v = "verified"
				}
				relay := "-"
				if a, err := wire.ParseRelayAddress(c.Relay); err == nil {
					relay = a.URL
				}
				when := "-"
				if ok {
					when = at.Local().Format("2006-01-02 15:04")
				}
				t.row(c.Name, c.Public.ID().String(), v, relay, safetext.Line(c.Nick), when)
			}
			if t != nil {
				return t.flush()
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per contact per line")
	return cmd
}

func newContactsRemoveCmd(e *env, h *homeFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Forget a contact (the messages stay in the history)",
		Long: `Forget a contact: its pinned keys leave the contact book, and what it sends
from now on is kept aside as from a stranger. The messages exchanged stay in
the history. On a terminal it asks first; --yes does not.`,
		Example: "  wschat contacts remove bob\n  wschat contacts remove --yes bob",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			book, _, err := openBook(h)
			if err != nil {
				return err
			}
			c, err := lookupContact(book, args[0])
			if err != nil {
				return err
			}
			if !yes {
				if _, tty := terminal(e.stdin); tty {
					fmt.Fprintf(e.stderr, "Forget %s (%s)? Their messages stay in the history. [y/N] ", c.Name, c.Public.ID())
					var answer string
					fmt.Fscanln(e.stdin, &answer)
					if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
						return errors.New("not removed")
					}
				}
			}
			if err := book.Remove(c.Name); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wschat: removed %s\n", c.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask")
	return cmd
}

// looksLikeInvite reports whether s starts like an invite.
func looksLikeInvite(s string) bool { return len(s) > 7 && strings.EqualFold(s[:7], "WSCHAT1") }

func newContactsVerifyCmd(e *env, h *homeFlags) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "verify NAME",
		Short: "Show the safety number; with --yes, mark the contact verified",
		Long: `Print the safety number of you and NAME. Compare it with theirs over a channel
you trust (in person, a call). If they match, run again with --yes to mark
the contact verified.`,
		Example: "  wschat contacts verify bob\n  wschat contacts verify --yes bob",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			book, f, err := openBook(h)
			if err != nil {
				return err
			}
			c, err := lookupContact(book, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, keys.SafetyNumber(f.Identity.Public(), c.Public))
			if !yes {
				if !c.Verified {
					fmt.Fprintln(e.stderr, "hint: if it matches theirs, run: wschat contacts verify --yes", c.Name)
				}
				return nil
			}
			if _, err = book.Verify(c.Name); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wschat: %s is now verified\n", c.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "the numbers match: mark the contact verified")
	return cmd
}
