package main

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every flag of every command has a variable of its own: no two flags
// that mean different things share one (a handler's `wschat listen`
// inherited WSCHAT_FROM, meant for the message, as --from), and none
// starts with the handler's WSCHAT_MSG_.
func TestEnvNamesUnique(t *testing.T) {
	root := newRoot(strings.NewReader(""), io.Discard, io.Discard)
	owner := map[string]string{}   // variable -> command path + flag
	names := map[string][]string{} // local flag name -> commands
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || f.Name == "version" {
				return
			}
			v := envVar(c, f)
			who := c.CommandPath() + " --" + f.Name
			if prev, ok := owner[v]; ok {
				t.Errorf("%s is the variable of both %s and %s", v, prev, who)
			}
			owner[v] = who
			if strings.HasPrefix(v, msgEnvPrefix) {
				t.Errorf("%s (%s) collides with the handler's variables", v, who)
			}
			names[f.Name] = append(names[f.Name], c.CommandPath())
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for name, cmds := range names {
		if len(cmds) > 1 && !sharedFlags[name] {
			t.Errorf("--%s is a flag of %v: list it in sharedFlags", name, cmds)
		}
	}
	if owner["WSCHAT_LISTEN_TIMEOUT"] == "" || owner["WSCHAT_SEND_TIMEOUT"] == "" || owner["WSCHAT_HOME"] == "" || owner["WSCHAT_TOKEN"] == "" {
		t.Errorf("variables: %v", owner)
	}
}
