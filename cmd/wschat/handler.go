package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/wschat/wschat/internal/safetext"
)

// handlerOptions are listen's settings for -- CMD ARGS.
type handlerOptions struct {
	retries int           // runs after the first, when it fails
	timeout time.Duration // per run; 0: none
}

// handlerFirstRetry is the wait before the first retry; each next one
// waits twice as long.
const handlerFirstRetry = 200 * time.Millisecond

// msgEnvPrefix starts the handler's message variables. No flag's
// variable starts with it (TestEnvNamesUnique), so a `wschat listen`
// inside a handler is not filtered by the message it handles.
const msgEnvPrefix = "WSCHAT_MSG_"

// handlerEnv is the environment of a handler run: the message's fields,
// with no control bytes in them (the text on stdin stays raw).
func handlerEnv(ev event, text string) []string {
	verified := "false"
	if ev.Verified != nil && *ev.Verified {
		verified = "true"
	}
	return append(os.Environ(),
		msgEnvPrefix+"TYPE="+ev.Type, msgEnvPrefix+"ID="+ev.ID, msgEnvPrefix+"FROM="+ev.From, msgEnvPrefix+"FROM_ID="+ev.FromID,
		msgEnvPrefix+"TEXT="+safetext.Text(text), msgEnvPrefix+"SENT_AT="+ev.SentAt, msgEnvPrefix+"RECEIVED_AT="+ev.ReceivedAt,
		msgEnvPrefix+"CURSOR="+strconv.FormatInt(ev.Cursor, 10), msgEnvPrefix+"VERIFIED="+verified)
}

// errHandlerFailed: the handler failed on every try.
var errHandlerFailed = errors.New("handler failed")

// runHandler runs the per-message command with the fields in the
// environment and the text on stdin, one message at a time: a run that
// fails (non-zero exit, or killed at the timeout) is retried with
// backoff, up to o.retries times. It returns errHandlerFailed (wrapped,
// with the last failure) when every run failed, and another error only
// when the command cannot be run at all.
func runHandler(ctx context.Context, e *env, args []string, o handlerOptions, ev event, text string) error {
	delay := handlerFirstRetry
	var last error
	for try := 0; try <= o.retries; try++ {
		if try > 0 {
			fmt.Fprintf(e.stderr, "wschat: handler for message %s: %v; trying again in %v\n", ev.ID, last, delay)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay *= 2
		}
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if o.timeout > 0 {
			rctx, cancel = context.WithTimeout(ctx, o.timeout)
		}
		cmd := exec.CommandContext(rctx, args[0], args[1:]...)
		cmd.Stdin = bytes.NewReader([]byte(text))
		cmd.Stdout, cmd.Stderr = e.stdout, e.stderr
		cmd.Env = handlerEnv(ev, text)
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		timedOut := rctx.Err() != nil && ctx.Err() == nil
		cancel()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case timedOut:
			last = fmt.Errorf("killed after %v", o.timeout)
		case errors.As(err, &ee):
			last = err
		default:
			return fmt.Errorf("running %s: %w", args[0], err)
		}
	}
	return fmt.Errorf("%w for message %s after %d %s: %v", errHandlerFailed, ev.ID, o.retries+1, plural(o.retries+1, "try", "tries"), last)
}

// plural is one or many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// handlerHelp is listen's help on handlers.
var handlerHelp = strings.TrimSpace(`
With -- CMD ARGS..., CMD runs once per message, one at a time and in order,
with the text on stdin (exactly as sent) and the fields in WSCHAT_MSG_TYPE,
WSCHAT_MSG_ID, WSCHAT_MSG_FROM, WSCHAT_MSG_FROM_ID, WSCHAT_MSG_TEXT (control
characters escaped), WSCHAT_MSG_SENT_AT, WSCHAT_MSG_RECEIVED_AT,
WSCHAT_MSG_CURSOR and WSCHAT_MSG_VERIFIED ("true" when you verified the
contact's safety number). A run that exits non-zero, or outlives
--handler-timeout, is tried again after 0.2 s, 0.4 s, 0.8 s, ... up to
--retries times; then a "handler_failed" event is reported (a line on
stderr; with --json also an object on stdout) and listen goes on with the
next message.`)
