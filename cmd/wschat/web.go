package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wschat/wschat/web"
	"github.com/wschat/wschat/wire"
)

type webOptionsFlags struct {
	listen string
}

func newWebCmd(e *env, h *homeFlags) *cobra.Command {
	o := &webOptionsFlags{}
	cmd := &cobra.Command{
		Use:   "web",
		Short: "Serve the web app from this binary, on loopback",
		Long: `Serve the wschat web app from this binary instead of trusting the copy a relay
operator serves: the page holds your keys, so whoever serves it could serve
one that leaks them (PROTOCOL.md §11). The files are the ones built into
this wschat; open the printed address in a browser on this machine.

The page talks to any relay: the one --relay names (default: the relay of
this home's identity, if there is one) is offered when the page makes a new
identity. Browsers keep the page's data per address, so use the same
--listen address every time.`,
		Example: `  # Serve on a fixed port and open http://127.0.0.1:8480/
  wschat web --listen 127.0.0.1:8480

  # Offer a particular relay to a new identity
  wschat web --relay 'wss://relay.example.com/#YFpy...'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runWeb(cmd.Context(), e, h, o) },
	}
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8480", "address to serve on (keep it on loopback: browsers allow the app only on https:// or localhost)")
	return cmd
}

func runWeb(ctx context.Context, e *env, h *homeFlags, o *webOptionsFlags) error {
	relay := h.relay
	if relay == "" {
		if f, err := h.loadIdentity(); err == nil {
			relay = f.Relay
		}
	}
	var addr wire.RelayAddress
	if relay != "" {
		a, err := wire.ParseRelayAddress(relay)
		if err != nil {
			return usageError{fmt.Errorf("--relay: %w", err)}
		}
		addr = a
	}
	host, _, err := net.SplitHostPort(o.listen)
	if err != nil {
		return usageError{fmt.Errorf("--listen %q: %w", o.listen, err)}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return usageError{fmt.Errorf("--listen %q: serve the web app on loopback (127.0.0.1 or localhost); browsers refuse it elsewhere without https", o.listen)}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	opt := webOptions(addr, "local")
	srv := &http.Server{
		Handler:           web.Handler(opt),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug),
	}
	url := "http://" + ln.Addr().String() + "/"
	fmt.Fprintln(e.stdout, url)
	fmt.Fprintln(e.stderr, "wschat: serving the web app at", url, "(Ctrl+C to stop)")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// webOptions configures the web app for a relay address (zero: none).
// A relay without TLS is a test or loopback setup: its page may also
// reach ws:// relays.
func webOptions(addr wire.RelayAddress, servedBy string) web.Options {
	opt := web.Options{ServedBy: servedBy, ConnectSrc: []string{"ws://127.0.0.1:*", "ws://localhost:*", "ws://[::1]:*"}}
	if addr.URL != "" {
		opt.Relay = addr.String()
		if strings.HasPrefix(addr.URL, "ws://") {
			opt.ConnectSrc = []string{"ws:"}
		}
	}
	return opt
}

// webAppURL is the web page of a relay address, with the relay key in the
// fragment so that the page pins it.
func webAppURL(addr wire.RelayAddress) string {
	return httpURL(addr.URL) + "#" + addr.Key.String()
}

func httpURL(wsURL string) string {
	if rest, ok := strings.CutPrefix(wsURL, "wss://"); ok {
		return "https://" + rest
	}
	return "http://" + strings.TrimPrefix(wsURL, "ws://")
}
