package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/wschat/wschat/keys"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// Exit codes, the same for every command.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitTimeout = 3
	exitTrust   = 4
)

// errTimedOut: nothing arrived, or delivery was not confirmed, in time
// (exit 3).
var errTimedOut = errors.New("timed out")

// usageError marks a command-line mistake (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// hintError adds a "hint:" line to an error.
type hintError struct {
	err  error
	hint string
}

func (e hintError) Error() string { return e.err.Error() }
func (e hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return hintError{err, hint} }

// warning is a problem worth saying that does not fail the command
// (exit 0): printed as "wschat: warning: ...".
type warning struct{ err error }

func (w warning) Error() string { return w.err.Error() }
func (w warning) Unwrap() error { return w.err }

// exitCode maps an error to the exit code. The one place it happens.
func exitCode(err error) int {
	var ue usageError
	var te trustError
	var w warning
	switch {
	case err == nil, errors.As(err, &w):
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &te), errors.Is(err, keys.ErrKeyChanged):
		return exitTrust
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errTimedOut):
		return exitTimeout
	}
	return exitError
}

// Main runs wschat with args and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		var w warning
		if errors.As(err, &w) {
			fmt.Fprint(stderr, "wschat: warning: ")
		} else {
			fmt.Fprint(stderr, "wschat: ")
		}
		fmt.Fprintf(stderr, "%s\n", err)
		var he hintError
		if errors.As(err, &he) {
			fmt.Fprintf(stderr, "hint: %s\n", he.hint)
		}
	}
	return exitCode(err)
}

// env is where commands find their streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "wschat",
		Short: "End-to-end encrypted messages between agents, scripts and humans",
		Long: `wschat lets AI agents and shell scripts converse with humans, end-to-end
encrypted, through a relay that only ever sees ciphertext.

Every flag can also be set with an environment variable: see 'wschat help environment'.
Exit codes: 0 ok, 1 error, 2 usage, 3 timed out, 4 trust failure.`,
		Version:           version,
		SilenceErrors:     true,
		SilenceUsage:      true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnv(cmd) },
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	h := &homeFlags{}
	h.register(root)
	root.AddCommand(newRelayCmd(e), newKeygenCmd(e, h), newInviteCmd(e, h), newContactsCmd(e, h), newSendCmd(e, h), newListenCmd(e, h), newChatCmd(e, h))
	root.AddCommand(newMCPCmd(e, h), newWebCmd(e, h), newSetRelayCmd(e, h), newDoctorCmd(e, h), newOutboxCmd(e, h))
	topic := &cobra.Command{Use: "environment", Short: "Environment variables: every flag has one"}
	root.AddCommand(topic)
	// The list walks every command's flags: made when asked for, not on
	// every run.
	help := root.HelpFunc()
	topic.SetHelpFunc(func(c *cobra.Command, args []string) {
		c.Long = environmentHelp(root)
		help(c, args)
	})
	// Cobra's own argument errors are usage errors too.
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		args := c.Args
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// envName is the environment variable of a flag: WSCHAT_ and the flag
// name in upper case with '-' as '_'.
func envName(flag string) string {
	return "WSCHAT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// sharedFlags are flag names that several commands have with meanings of
// their own: their variables name the command too (WSCHAT_SEND_TIMEOUT,
// WSCHAT_LISTEN_TIMEOUT), so that setting one does not change another.
// TestEnvNamesUnique fails when a flag name is shared and not listed.
var sharedFlags = map[string]bool{"timeout": true, "json": true, "listen": true, "yes": true}

// envVar is the environment variable of flag f of cmd.
func envVar(cmd *cobra.Command, f *pflag.Flag) string {
	if !sharedFlags[f.Name] || cmd.PersistentFlags().Lookup(f.Name) == f && !cmd.HasParent() {
		return envName(f.Name)
	}
	path := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	return envName(strings.ReplaceAll(path, " ", "_") + "_" + f.Name)
}

// applyEnv sets every flag of cmd that was not given on the command line
// from its environment variable.
func applyEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" || f.Name == "version" {
			return
		}
		name := envVar(cmd, f)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if e := cmd.Flags().Set(f.Name, v); e != nil {
			err = usageError{fmt.Errorf("%s=%q: %w", name, v, e)}
		}
	})
	return err
}

// environmentHelp lists every flag's variable.
func environmentHelp(root *cobra.Command) string {
	type row struct{ name, usage, cmds string }
	rows := map[string]*row{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || f.Name == "version" {
				return
			}
			n := envVar(c, f)
			r := rows[n]
			if r == nil {
				r = &row{name: n, usage: f.Usage}
				rows[n] = r
			}
			if r.cmds != "" {
				r.cmds += ", "
			}
			r.cmds += c.CommandPath()
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Every flag can be set with an environment variable named WSCHAT_ and the flag\nname in upper case, with '-' as '_'; a flag that several commands have with\nmeanings of their own names the command too (WSCHAT_LISTEN_TIMEOUT). A flag on\nthe command line wins. Handlers of 'listen -- CMD' get the message's fields in\nWSCHAT_MSG_* variables, which no flag uses.\n\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-32s %s (%s)\n", n, rows[n].usage, rows[n].cmds)
	}
	return b.String()
}
