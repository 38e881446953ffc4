package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/wire"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"wschat": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/*.txtar: the real wschat binary (this test
// binary, re-executed) against a real relay on 127.0.0.1.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			env.Setenv("HOME", env.WorkDir)
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, ".config"))
			env.Values["relay"] = &relayHolder{}
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

// scriptRelay is a relay in the test process, on a fixed port per script
// so that it can restart where clients expect it.
type scriptRelay struct {
	srv  *relayd.Server
	mb   relayd.Mailbox
	done chan error
}

type relayHolder struct{ r *scriptRelay }

// cmdRelay: relay start | stop | restart. The relay keeps its key and its
// disk mailbox in $WORK/relay-data and its port across restarts; start
// sets $RELAY to its address.
func cmdRelay(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: relay start|stop|restart")
	}
	h := ts.Value("relay").(*relayHolder)
	r := h.r
	stop := func(graceful bool) {
		if r == nil {
			ts.Fatalf("relay not running")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = graceful
		r.srv.Shutdown(ctx, 50*time.Millisecond)
		<-r.done
		r.mb.Close()
	}
	switch args[0] {
	case "start", "restart":
		if args[0] == "restart" {
			stop(true)
		}
		dir := ts.MkAbs("relay-data")
		os.MkdirAll(dir, 0o700)
		var seed [32]byte
		copy(seed[:], "testscript relay key, fixed....")
		id, err := wire.RelayIdentityFromSeed(seed)
		ts.Check(err)
		mb, err := relayd.OpenBoltMailbox(filepath.Join(dir, "mailbox.db"), relayd.MailboxLimits{})
		ts.Check(err)
		addr := ts.Getenv("RELAY_LISTEN")
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		var ln net.Listener
		for i := 0; ; i++ {
			if ln, err = net.Listen("tcp", addr); err == nil || i == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond) // the old socket is closing
		}
		ts.Check(err)
		srv, err := relayd.New(relayd.Config{Identity: id, Mailbox: mb})
		ts.Check(err)
		nr := &scriptRelay{srv: srv, mb: mb, done: make(chan error, 1)}
		go func() { nr.done <- srv.Serve(ln) }()
		ts.Setenv("RELAY_LISTEN", ln.Addr().String())
		ts.Setenv("RELAY", srv.Address(fmt.Sprintf("ws://%s/", ln.Addr())).String())
		h.r = nr
		ts.Defer(func() {
			if h.r == nr {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				nr.srv.Shutdown(ctx, 0)
				<-nr.done
				nr.mb.Close()
			}
		})
	case "stop":
		stop(true)
		h.r = nil
	default:
		ts.Fatalf("unknown relay command %q", args[0])
	}
}
