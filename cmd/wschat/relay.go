package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/sys/unix"

	"github.com/wschat/wschat/keys"
	"github.com/wschat/wschat/relayd"
	"github.com/wschat/wschat/web"
	"github.com/wschat/wschat/wire"
)

type relayOptions struct {
	listen     string
	url        string
	data       string
	mailbox    string
	tlsCert    string
	tlsKey     string
	acme       string
	acmeEmail  string
	metrics    string
	maxStorage sizeFlag
	budget     sizeFlag
	proxies    []string
	logLevel   string
	limits     relayd.Limits
	mbLimits   relayd.MailboxLimits
	origins    []string
	drainWait  time.Duration
	listenSet  bool // --listen was given
	web        bool
}

func newRelayCmd(e *env) *cobra.Command {
	o := &relayOptions{}
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Run the relay",
		Long: `Run the wschat relay: it routes end-to-end encrypted frames between identities
and stores frames for recipients that are offline. It never sees a plaintext.

The first line on stdout is the relay address (the URL and the relay's public
key, one string) that clients are given. Everything else goes to stderr.
On first start the relay makes its key in the data directory (0600) and reuses
it afterwards. SIGINT or SIGTERM stop it gracefully: it stops accepting, tells
clients when to reconnect, stores what was not yet acknowledged, and exits 0.`,
		Example: `  # Local relay with embedded defaults
  wschat relay

  # Pick a free port and keep nothing on disk
  wschat relay --listen 127.0.0.1:0 --mailbox memory

  # Public relay with a certificate from Let's Encrypt (listens on :443);
  # people open https://relay.example.com/ for the web app
  wschat relay --acme relay.example.com --data /var/lib/wschat-relay

  # Behind Caddy or nginx on the same machine, metrics for Prometheus
  wschat relay --listen 127.0.0.1:8443 --url wss://relay.example.com/ \
    --trusted-proxy 127.0.0.1/32 --metrics 127.0.0.1:9090

  # Only the relay, no web app
  wschat relay --web=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.listenSet = cmd.Flags().Changed("listen")
			return runRelay(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	d := relayd.DefaultLimits
	f.StringVar(&o.listen, "listen", "127.0.0.1:8443", "address to listen on (port 0 picks a free port)")
	f.StringVar(&o.url, "url", "", "public URL clients use, if not the listen address (e.g. wss://relay.example.com/)")
	f.StringVar(&o.data, "data", defaultRelayData(), "directory for the relay key and the mailbox")
	f.StringVar(&o.mailbox, "mailbox", "disk", "where stored frames live: disk (survives restarts and crashes) or memory (nothing on disk)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "serve wss with this certificate file (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "private key file for --tls-cert (PEM)")
	f.StringVar(&o.acme, "acme", "", "serve wss with a certificate for DOMAIN from Let's Encrypt, kept in --data (TLS-ALPN-01: port 443 must reach this listener; --listen defaults to :443)")
	f.StringVar(&o.acmeEmail, "acme-email", "", "contact address given to Let's Encrypt for --acme (optional)")
	f.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics at http://ADDR/metrics on a listener of their own (off by default; keep it private)")
	f.StringSliceVar(&o.proxies, "trusted-proxy", nil, "address or CIDR of a reverse proxy in front of the relay: its connections count per client (X-Forwarded-For) (repeatable)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (logs carry short ids only, never content)")
	f.IntVar(&o.limits.MaxFrameSize, "max-frame-size", d.MaxFrameSize, "largest frame accepted, in bytes (checked before the body is read)")
	f.DurationVar(&o.limits.HandshakeTimeout, "handshake-timeout", d.HandshakeTimeout, "time allowed from connect to authenticated")
	f.DurationVar(&o.limits.PingInterval, "ping-interval", d.PingInterval, "ping a client after this much silence")
	f.DurationVar(&o.limits.IdleTimeout, "idle-timeout", d.IdleTimeout, "close a connection after this much silence")
	f.DurationVar(&o.limits.WriteTimeout, "write-timeout", d.WriteTimeout, "time allowed for one write to a client")
	f.IntVar(&o.limits.SendQueue, "send-queue", d.SendQueue, "frames queued per connection before frames are stored instead")
	f.Float64Var(&o.limits.RateBytes, "rate", d.RateBytes, "bytes per second one connection may send")
	f.IntVar(&o.limits.RateBurst, "burst", d.RateBurst, "burst size in bytes for --rate")
	f.IntVar(&o.limits.MaxConnsPerIP, "max-conns-per-ip", d.MaxConnsPerIP, "concurrent connections from one address")
	f.IntVar(&o.limits.MaxConns, "max-conns", d.MaxConns, "concurrent connections in all")
	f.DurationVar(&o.limits.AckTimeout, "ack-timeout", d.AckTimeout, "store a delivered frame the recipient has not acknowledged by then")
	f.StringSliceVar(&o.origins, "allow-origin", nil, "browser origin allowed to connect besides the relay's own host (repeatable)")
	f.IntVar(&o.mbLimits.MaxFrames, "mailbox-max-frames", relayd.DefaultMailboxMaxFrames, "messages stored per recipient")
	f.Int64Var(&o.mbLimits.MaxBytes, "mailbox-max-bytes", relayd.DefaultMailboxMaxBytes, "bytes stored per recipient (for messages, and for receipts)")
	f.IntVar(&o.mbLimits.MaxReceipts, "mailbox-max-receipts", relayd.DefaultMailboxMaxReceipts, "delivery and read receipts stored per recipient (a quota of their own)")
	f.DurationVar(&o.mbLimits.TTL, "ttl", relayd.DefaultMailboxTTL, "how long a stored frame is kept")
	f.Var(&o.maxStorage, "max-storage", "cap on everything stored for offline recipients, such as 2GiB (default: the smaller of 10 GiB and half the free space, or memory, at start)")
	f.DurationVar(&o.mbLimits.RegistrationTTL, "registration-ttl", relayd.DefaultRegistrationTTL, "how long an identity stays registered after its last receiving connection (then its stored frames go too)")
	o.budget = sizeFlag(d.SenderBudget)
	f.Var(&o.budget, "sender-budget", "bytes one identity may have stored for offline recipients per hour")
	f.DurationVar(&o.limits.CompactEvery, "compact-every", d.CompactEvery, "how often the disk mailbox is rewritten without its freed pages (which keep deleted data until then)")
	f.DurationVar(&o.drainWait, "shutdown-timeout", 10*time.Second, "time allowed for a graceful shutdown")
	f.BoolVar(&o.web, "web", true, "serve the web app at the relay's address (browsers need https:// except on localhost)")
	return cmd
}

func defaultRelayData() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "wschat-relay"
	}
	return filepath.Join(dir, "wschat", "relay")
}

func runRelay(ctx context.Context, e *env, o *relayOptions) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)}
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	if o.acme != "" && o.tlsCert != "" {
		return usageError{errors.New("--acme and --tls-cert are alternatives")}
	}
	if o.mbLimits.TTL <= 0 || o.mbLimits.TTL >= 30*24*time.Hour {
		return usageError{fmt.Errorf("--ttl %v: must be positive and under 30 days (the clients' replay horizon)", o.mbLimits.TTL)}
	}
	if o.mailbox != "disk" && o.mailbox != "memory" {
		return usageError{fmt.Errorf("--mailbox %q: want disk or memory", o.mailbox)}
	}
	if o.mbLimits.RegistrationTTL <= 0 {
		return usageError{fmt.Errorf("--registration-ttl %v: must be positive", o.mbLimits.RegistrationTTL)}
	}
	for _, p := range o.proxies {
		pfx, err := parsePrefix(p)
		if err != nil {
			return usageError{fmt.Errorf("--trusted-proxy %q: want an address or a CIDR", p)}
		}
		o.limits.TrustedProxies = append(o.limits.TrustedProxies, pfx)
	}
	if o.acme != "" && !o.listenSet {
		o.listen = ":443"
	}
	o.limits.SenderBudget = int64(o.budget)
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(o.data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	id, created, err := keys.LoadOrCreateRelayKey(filepath.Join(o.data, "relay.key"), rand.Reader)
	if err != nil {
		return withHint(err, "the relay key lives in --data; fix or move the file named above")
	}
	if created {
		log.Info("made a new relay key", "dir", o.data)
	}
	o.mbLimits.MaxStorage = int64(o.maxStorage)
	if o.mbLimits.MaxStorage == 0 {
		o.mbLimits.MaxStorage = defaultMaxStorage(o.mailbox, o.data)
	}
	var mb relayd.Mailbox
	switch o.mailbox {
	case "disk":
		b, err := relayd.OpenBoltMailbox(filepath.Join(o.data, "mailbox.db"), o.mbLimits)
		if err != nil {
			return withHint(err, "is another relay running with the same --data?")
		}
		mb = b
	default:
		mb = relayd.NewMemoryMailbox(o.mbLimits)
	}
	mbOpen := true
	defer func() {
		if mbOpen {
			mb.Close()
		}
	}()
	raw, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "ws"
	var tlsConfig *tls.Config
	switch {
	case o.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			raw.Close()
			return fmt.Errorf("tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "wss"
	case o.acme != "":
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			HostPolicy: autocert.HostWhitelist(o.acme),
			Cache:      autocert.DirCache(filepath.Join(o.data, "acme")),
			Email:      o.acmeEmail,
		}
		tlsConfig = m.TLSConfig()
		scheme = "wss"
		if o.url == "" {
			o.url = "wss://" + o.acme + "/"
		}
	}
	url := o.url
	if url == "" {
		host, port, _ := net.SplitHostPort(raw.Addr().String())
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		url = scheme + "://" + net.JoinHostPort(host, port) + "/"
	}
	if !strings.HasSuffix(url, "/") && !strings.Contains(strings.TrimPrefix(strings.TrimPrefix(url, "wss://"), "ws://"), "/") {
		url += "/"
	}
	addr := wire.RelayAddress{URL: url, Key: id.Public()}
	o.limits.AllowedOrigins = o.origins
	cfg := relayd.Config{Identity: id, Mailbox: mb, Limits: o.limits, Logger: log}
	if o.web {
		cfg.Web = web.Handler(webOptions(addr, "relay"))
	}
	srv, err := relayd.New(cfg)
	if err != nil {
		raw.Close()
		return usageError{err}
	}
	// Every connection counts against the per-address cap from its
	// accept, under TLS.
	ln := srv.CountingListener(raw)
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	if _, err := fmt.Fprintln(e.stdout, addr.String()); err != nil {
		ln.Close()
		return err
	}
	log.Info("relay listening", "addr", ln.Addr().String(), "url", url, "mailbox", o.mailbox, "max_storage", humanize.IBytes(uint64(o.mbLimits.MaxStorage)))
	if o.web {
		log.Info("web app", "open", webAppURL(addr))
	}

	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	if o.metrics != "" {
		mln, err := net.Listen("tcp", o.metrics)
		if err != nil {
			ln.Close()
			<-served
			return fmt.Errorf("--metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		ms := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go ms.Serve(mln)
		defer ms.Close()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), o.drainWait)
	defer cancel()
	if err := srv.Shutdown(sctx, time.Second); err != nil {
		log.Warn("shutdown did not finish cleanly", "err", err)
	}
	<-served
	mbOpen = false
	if err := mb.Close(); err != nil {
		return fmt.Errorf("closing the mailbox: %w", err)
	}
	log.Info("stopped")
	return nil
}

// sizeFlag is a byte size given as 2GiB, 500MB or 1048576.
type sizeFlag int64

func (s *sizeFlag) String() string {
	if *s == 0 {
		return "0"
	}
	return humanize.IBytes(uint64(*s))
}

func (s *sizeFlag) Set(v string) error {
	n, err := humanize.ParseBytes(v)
	if err != nil || n > 1<<62 {
		return fmt.Errorf("want a size such as 2GiB or 500MB")
	}
	*s = sizeFlag(n)
	return nil
}

func (s *sizeFlag) Type() string { return "SIZE" }

// defaultMaxStorage is the smaller of 10 GiB and half the free space of
// the data directory's file system (half, so that compaction has room
// for its copy), or half the memory for a memory mailbox.
func defaultMaxStorage(mailbox, dir string) int64 {
	var free uint64
	if mailbox == "memory" {
		var si unix.Sysinfo_t
		if unix.Sysinfo(&si) == nil {
			free = uint64(si.Totalram) * uint64(si.Unit)
		}
	} else {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil {
			free = st.Bavail * uint64(st.Bsize)
		}
	}
	if free == 0 {
		return relayd.DefaultMaxStorage
	}
	return min(relayd.DefaultMaxStorage, int64(free/2))
}

// parsePrefix reads an address (a /32 or /128) or a CIDR.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
