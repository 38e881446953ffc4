package main

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.uber.org/goleak"

	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/relayd/relaytest"
	"github.com/wschat/wschat/wire"
)

func TestMain(m *testing.M) {
	testscript.Main(leakChecked{m}, map[string]func(){
		"wschat": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// leakChecked runs the tests, then fails if they left goroutines behind.
type leakChecked struct{ m *testing.M }

func (l leakChecked) Run() int {
	code := l.m.Run()
	http.DefaultClient.CloseIdleConnections() // keep-alive connections of tests' requests
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// TestScripts runs testdata/*.txtar: the real wschat binary (this test
// binary, re-executed) against a real relay on 127.0.0.1.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Values["relays"] = map[string]*relaytest.Relay{}
			env.Values["t"] = t // the relays stop with each script (ts.Defer); t only hears of failures
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"relay": cmdRelay,
			// exit N CMD ARGS... runs CMD and wants exit code N.
			"exit": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: exit N CMD ARGS...")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				got := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("%v", err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("exit code %d, want %d", got, want)
				}
			},
			// bigfile NAME SIZE writes SIZE bytes of text.
			"bigfile": func(ts *testscript.TestScript, neg bool, args []string) {
				n, err := strconv.Atoi(args[1])
				ts.Check(err)
				ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Repeat("x", n)), 0o644))
			},
			// damagestore FILE overwrites a page of a store's message
			// index, as a failing disk would.
			"damagestore": func(ts *testscript.TestScript, neg bool, args []string) {
				ts.Check(damageStoreIndex(ts.MkAbs(args[0])))
			},
			// age FILE sets the file's times to an hour ago.
			"age": func(ts *testscript.TestScript, neg bool, args []string) {
				old := time.Now().Add(-time.Hour)
				ts.Check(os.Chtimes(ts.MkAbs(args[0]), old, old))
			},
			// envfile NAME FILE sets $NAME to the file's content, trimmed.
			"envfile": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: envfile NAME FILE")
				}
				ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
			},
		},
	})
}

// cmdRelay: relay start|stop|restart [NAME]. Each named relay (the
// default one has no name) keeps its key and its disk mailbox in
// $WORK/relay-data[-NAME] and its port across restarts; start sets $RELAY
// (or $RELAY_NAME) to its address.
func cmdRelay(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 || len(args) > 2 {
		ts.Fatalf("usage: relay start|stop|restart [NAME]")
	}
	name := ""
	if len(args) == 2 {
		name = args[1]
	}
	relays := ts.Value("relays").(map[string]*relaytest.Relay)
	r := relays[name]
	switch args[0] {
	case "start":
		if r != nil {
			r.Restart()
			return
		}
		suffix, envName := "", "RELAY"
		if name != "" {
			suffix, envName = "-"+name, "RELAY_"+strings.ToUpper(name)
		}
		dir := ts.MkAbs("relay-data" + suffix)
		os.MkdirAll(dir, 0o700)
		var seed [32]byte
		copy(seed[:], "testscript relay key "+name)
		id, err := wire.RelayIdentityFromSeed(seed)
		ts.Check(err)
		mb, err := relayd.OpenBoltMailbox(filepath.Join(dir, "mailbox.db"), relayd.MailboxLimits{})
		ts.Check(err)
		t := ts.Value("t").(testing.TB)
		r = relaytest.Start(t, relaytest.Options{Identity: id, Mailbox: mb})
		relays[name] = r
		ts.Setenv(envName, r.Addr.String())
		ts.Defer(func() {
			r.Stop()
			mb.Close()
		})
	case "restart":
		if r == nil {
			ts.Fatalf("relay %q not running", name)
		}
		r.Restart()
	case "stop":
		if r == nil {
			ts.Fatalf("relay %q not running", name)
		}
		r.Stop()
	default:
		ts.Fatalf("unknown relay command %q", args[0])
	}
}

// damageStoreIndex overwrites the first page of the messages table's
// unique index in a closed store file.
func damageStoreIndex(path string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	var root, size int64
	db.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(new(int), new(int), new(int))
	if err := db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_messages_1'`).Scan(&root); err != nil {
		db.Close()
		return err
	}
	db.QueryRow(`PRAGMA page_size`).Scan(&size)
	db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(bytes.Repeat([]byte{0xa5}, int(size)), (root-1)*size)
	return err
}
