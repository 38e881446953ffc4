package relayd

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wschat/wschat/wire"
)

// metrics are the relay's Prometheus series. Drop and refusal reasons are
// wire.Reason labels. No series carries an id, an address or content.
type metrics struct {
	// Children resolved once: the label lookup costs more than routing.
	routedDelivered, routedStored prometheus.Counter
	outLive, outStored            prometheus.Counter
	ackedLive, ackedStored        prometheus.Counter

	conns     *prometheus.GaugeVec
	framesIn  prometheus.Counter
	bytesIn   prometheus.Counter
	framesOut *prometheus.CounterVec
	bytesOut  prometheus.Counter
	routedBy  *prometheus.CounterVec
	storedN   prometheus.Counter
	deliverBy *prometheus.CounterVec
	expiredN  prometheus.Counter
	expiredR  prometheus.Counter
	refusedBy *prometheus.CounterVec
	droppedBy *prometheus.CounterVec
	compacts  prometheus.Counter
	compactS  prometheus.Histogram
	pausedS   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	m := &metrics{
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "wschat_relay_connections", Help: "Authenticated connections, by kind (receive or send-only).",
		}, []string{"kind"}),
		framesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wschat_relay_frames_in_total", Help: "Data frames received from clients.",
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wschat_relay_bytes_in_total", Help: "Bytes of data frames received from clients.",
		}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wschat_relay_frames_out_total", Help: "Data frames written to clients, by source (live or stored).",
		}, []string{"source"}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wschat_relay_bytes_out_total", Help: "Bytes of data frames written to clients.",
		}),
		routedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wschat_relay_custody_total", Help: "Custody answers for data frames, by status.",
		}, []string{"status"}),
		storedN: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wschat_relay_frames_stored_total", Help: "Frames written to the mailbox.",
		}),
		deliverBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wschat_relay_frames_acked_total", Help: "Frames acknowledged by a recipient, by source (live or stored).",
		}, []string{"source"}),
		expiredN: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wschat_relay_frames_expired_total", Help: "Stored frames deleted at their time to live.",
		}),
		expiredR: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wschat_relay_registrations_expired_total", Help: "Registrations deleted at their time to live, with their frames.",
		}),
		compacts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wschat_relay_mailbox_compactions_total", Help: "Rewrites of the mailbox file (freed pages dropped).",
		}),
		compactS: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wschat_relay_mailbox_compaction_seconds", Help: "Time one compaction took.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		pausedS: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wschat_relay_mailbox_compaction_pause_seconds", Help: "Time writes waited during one compaction.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		refusedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wschat_relay_refused_total", Help: "Frames, commands and connections refused, by reason.",
		}, []string{"reason"}),
		droppedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wschat_relay_dropped_total", Help: "Frames the relay had taken but could not keep, by reason.",
		}, []string{"reason"}),
	}
	stat := func(f func(MailboxStats) float64) func() float64 {
		return func() float64 {
			st, err := s.mailbox.Stats()
			if err != nil {
				return -1
			}
			return f(st)
		}
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wschat_relay_mailbox_frames", Help: "Frames held in the mailbox.",
		}, stat(func(st MailboxStats) float64 { return float64(st.Frames) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wschat_relay_mailbox_receipts", Help: "Receipt frames held in the mailbox (of wschat_relay_mailbox_frames).",
		}, stat(func(st MailboxStats) float64 { return float64(st.Receipts) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wschat_relay_mailbox_bytes", Help: "Bytes of frame bodies held in the mailbox.",
		}, stat(func(st MailboxStats) float64 { return float64(st.Bytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wschat_relay_mailbox_used_bytes", Help: "What counts against the storage cap (frames and registrations with their overhead).",
		}, stat(func(st MailboxStats) float64 { return float64(st.Used) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wschat_relay_registrations", Help: "Identities registered (a receiving connection within the registration TTL).",
		}, stat(func(st MailboxStats) float64 { return float64(st.Registrations) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wschat_relay_sender_budgets", Help: "Senders whose storage budget is not full (held in memory).",
		}, func() float64 { return float64(s.budgets.len()) }),
	}
	m.routedDelivered = m.routedBy.WithLabelValues(wire.StatusDelivered.String())
	m.routedStored = m.routedBy.WithLabelValues(wire.StatusStored.String())
	m.outLive, m.outStored = m.framesOut.WithLabelValues("live"), m.framesOut.WithLabelValues("stored")
	m.ackedLive, m.ackedStored = m.deliverBy.WithLabelValues("live"), m.deliverBy.WithLabelValues("stored")
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(m.conns, m.framesIn, m.bytesIn, m.framesOut, m.bytesOut, m.routedBy,
		m.storedN, m.deliverBy, m.expiredN, m.expiredR, m.refusedBy, m.droppedBy, m.compacts, m.compactS, m.pausedS)
	reg.MustRegister(gauges...)
	return m
}

func (m *metrics) connected(receive bool, delta float64) {
	kind := "send"
	if receive {
		kind = "receive"
	}
	m.conns.WithLabelValues(kind).Add(delta)
}

func (m *metrics) frameIn(n int) {
	m.framesIn.Inc()
	m.bytesIn.Add(float64(n))
}

func (m *metrics) frameOut(n int, stored bool) {
	if stored {
		m.outStored.Inc()
	} else {
		m.outLive.Inc()
	}
	m.bytesOut.Add(float64(n))
}

func (m *metrics) routed(s wire.Status) {
	switch s {
	case wire.StatusDelivered:
		m.routedDelivered.Inc()
	case wire.StatusStored:
		m.routedStored.Inc()
	default:
		m.routedBy.WithLabelValues(s.String()).Inc()
	}
}

func (m *metrics) stored() { m.storedN.Inc() }

func (m *metrics) delivered(stored bool) {
	if stored {
		m.ackedStored.Inc()
	} else {
		m.ackedLive.Inc()
	}
}

func (m *metrics) expired(n Expired) {
	m.expiredN.Add(float64(n.Frames))
	m.expiredR.Add(float64(n.Registrations))
}

func (m *metrics) compacted(r CompactResult) {
	m.compacts.Inc()
	m.compactS.Observe(r.Took.Seconds())
	m.pausedS.Observe(r.Paused.Seconds())
}

func (m *metrics) refused(r wire.Reason) { m.refusedBy.WithLabelValues(r.String()).Inc() }
func (m *metrics) dropped(r wire.Reason) { m.droppedBy.WithLabelValues(r.String()).Inc() }
