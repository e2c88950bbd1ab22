/* Header prediction for established connections, in C.  Pure-Python twin:
 * _predict_py.py, whose docstring states the rules; the two give the same result on
 * the same connection and segment (tests/tcpip/test_tcp_predict.py compares every field).
 *
 *   established(tcb, frame, fields, now) -> bool   (ESTABLISHED; FIN-WAIT-1 and CLOSE-WAIT
 *                                                    before our FIN left)
 *       tcb: a unik_tcpip.tcp.connection.Connection; frame: the received frame (any
 *       buffer); fields: a record with the attributes seq, ack, flags, window,
 *       tcp_start, tcp_end, header_len, tsval, tsecr (Tcp4Fields; nothing here depends
 *       on the address family); now: the time in nanoseconds.  True when the segment
 *       was the predicted case and was processed; False, with nothing changed, for
 *       everything Connection.segment_arrives must see.
 *
 *   output(tcb) -> bool   (ESTABLISHED and CLOSE-WAIT, no FIN queued)
 *       Connection.output's common case: new data as the windows, the burst budget, Nagle
 *       and sender SWS avoidance allow, nothing to retransmit, no SACK blocks to report.
 *       Each segment is built whole in one call (the builder of _fastpath.c, through its
 *       capsule): the link header the connection keeps (tcb.link), the IPv4 or IPv6 header,
 *       TCP with timestamps, the checksum; without a link header, the segment behind the
 *       usual headroom.  True when done (sent, or nothing to send); False hands the rest
 *       to Connection.output's loop, which goes on from the state left here.
 *
 * The connection's fields are read and written as its attributes (interned names), so
 * the state stays the Python object's; what is not on the predicted path's hot core
 * (congestion control's growth, a tail loss probe's arming, an immediate ACK, sending)
 * is the connection's own methods, called from here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "../_tcpframe.h"

#define MASK 0xffffffffLL
#define HALF 0x7fffffffLL
#define MS 1000000LL
#define CONTROL 0x37 /* FIN, SYN, RST, ACK, URG: only ACK may be set */
#define ACK 0x10
#define TCP_LEN_ 20

enum {
    N_STATE, N_FLAGS, N_SEQ, N_ACK, N_TSVAL, N_TSECR, N_WINDOW, N_TCP_START, N_TCP_END, N_HEADER_LEN,
    N_RCV_NXT, N_TS_OK, N_SND_UNA, N_SND_MAX, N_SND, N_DATA, N_RCV_ADV, N_TS_RECENT, N_SND_WSCALE,
    N_SND_WND, N_SND_NXT, N_IN_RECOVERY, N_DUPACKS, N_TLP_END_SEQ, N_DSACK, N_SCOREBOARD, N_RANGES, N_OOO,
    N_SEGMENTS, N_READING_PAUSED, N_APP_CLOSED, N_RCV, N_HELD, N_READY, N_NOW, N_STATS, N_SEGMENTS_IN,
    N_LAST_RX_NS, N_KEEPALIVE_SENT, N_RTT, N_TS_OFFSET, N_SRTT_NS, N_RTTVAR_NS, N_RTO_NS, N_MIN_RTO_NS,
    N_MAX_RTO_NS, N_SRTT, N_ACKED, N_RETRIES, N_CWND, N_CC, N_ON_ACK, N_SSTHRESH, N_SND_MSS,
    N_LIMITED_TRANSMIT, N_TIMERS, N_RTO, N_PROBE, N_ARM_PROBE, N_SND_WL1, N_SND_WL2, N_MAX_SND_WND,
    N_LAST_ACK_SENT, N_BYTES_IN, N_UNACKED_SEGMENTS, N_SEND_ACK, N_DELAYED_ACK, N_CFG, N_DELAYED_ACK_NS,
    N_ARMED, N_WAKE_AT, N_FIN_QUEUED, N_OUTPUT, N_FIN_SEQ, N_LINK, N_LINK_TTL, N_IP_IDENT, N_PATH, N_TSO,
    N_HEADROOM, N_IP_HEADER_LEN, N_GSO_TCP, N_MAX_BURST, N_LAST_SEND_NS, N_BURST_USED, N_OUTPUT_PENDING,
    N_NODELAY, N_SACK_OK, N_BYTES_OUT, N_SEGMENTS_OUT, N_PERSIST, N_RCV_WSCALE, N_RCV_BUF, N_CAPACITY,
    N_LOCAL, N_REMOTE, N_TIME, N_TLP, N_OUTBOX, N_RACK, N_MIN_RTT_NS, N_COUNT
};

static const char *const names[N_COUNT] = {
    "state", "flags", "seq", "ack", "tsval", "tsecr", "window", "tcp_start", "tcp_end", "header_len",
    "rcv_nxt", "ts_ok", "snd_una", "snd_max", "snd", "data", "rcv_adv", "ts_recent", "snd_wscale",
    "snd_wnd", "snd_nxt", "in_recovery", "dupacks", "tlp_end_seq", "dsack", "scoreboard", "ranges", "ooo",
    "segments", "reading_paused", "app_closed", "rcv", "held", "ready", "now", "stats", "segments_in",
    "last_rx_ns", "keepalive_sent", "rtt", "ts_offset", "srtt_ns", "rttvar_ns", "rto_ns", "min_rto_ns",
    "max_rto_ns", "srtt", "acked", "retries", "cwnd", "cc", "on_ack", "ssthresh", "snd_mss",
    "limited_transmit", "timers", "rto", "probe", "_arm_probe", "snd_wl1", "snd_wl2", "max_snd_wnd",
    "last_ack_sent", "bytes_in", "unacked_segments", "send_ack", "delayed_ack", "cfg", "delayed_ack_ns",
    "_armed", "wake_at", "fin_queued", "output", "fin_seq", "link", "link_ttl", "ip_ident", "path", "tso",
    "headroom", "ip_header_len", "gso_tcp", "max_burst", "last_send_ns", "burst_used", "output_pending",
    "nodelay", "sack_ok", "bytes_out", "segments_out", "persist", "rcv_wscale", "rcv_buf", "capacity",
    "local", "remote", "time", "tlp", "outbox", "rack", "min_rtt_ns",
};

static PyObject *N[N_COUNT];

/* The whole-frame builder of _fastpath.c, from its capsule (_tcpframe.h). */
static TcpFrameFn build_frame;
/* unik.devices.TxOffload, fetched on first use. */
static PyObject *TxOffload;
/* State.ESTABLISHED, FIN_WAIT_1 and CLOSE_WAIT, fetched on first use: where the prediction
 * applies before our FIN is sent (in CLOSE-WAIT to ACKs only). */
static PyObject *ESTABLISHED, *FIN_WAIT_1, *CLOSE_WAIT;

/* State.ESTABLISHED, FIN_WAIT_1 and CLOSE_WAIT, fetched once: 0, or -1 with an exception. */
static int
ensure_states(void)
{
    if (ESTABLISHED != NULL)
        return 0;
    PyObject *mod = PyImport_ImportModule("unik_tcpip.tcp.state");
    PyObject *cls = mod == NULL ? NULL : PyObject_GetAttrString(mod, "State");
    Py_XDECREF(mod);
    ESTABLISHED = cls == NULL ? NULL : PyObject_GetAttrString(cls, "ESTABLISHED");
    FIN_WAIT_1 = ESTABLISHED == NULL ? NULL : PyObject_GetAttrString(cls, "FIN_WAIT_1");
    CLOSE_WAIT = FIN_WAIT_1 == NULL ? NULL : PyObject_GetAttrString(cls, "CLOSE_WAIT");
    Py_XDECREF(cls);
    if (CLOSE_WAIT == NULL) {
        Py_CLEAR(ESTABLISHED);
        Py_CLEAR(FIN_WAIT_1);
        return -1;
    }
    return 0;
}

/* An attribute as a 64-bit integer; -1 with an exception set on failure (check PyErr_Occurred). */
static int
get_ll(PyObject *obj, int name, long long *out)
{
    PyObject *v = PyObject_GetAttr(obj, N[name]);
    if (v == NULL)
        return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
set_ll(PyObject *obj, int name, long long value)
{
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL)
        return -1;
    int rc = PyObject_SetAttr(obj, N[name], v);
    Py_DECREF(v);
    return rc;
}

/* The truth of an attribute: 1, 0, or -1 on failure. */
static int
get_true(PyObject *obj, int name)
{
    PyObject *v = PyObject_GetAttr(obj, N[name]);
    if (v == NULL)
        return -1;
    int t = PyObject_IsTrue(v);
    Py_DECREF(v);
    return t;
}

/* Whether obj.<name>.<inner> is true (a non-empty list, say). */
static int
get_inner_true(PyObject *obj, int name, int inner)
{
    PyObject *v = PyObject_GetAttr(obj, N[name]);
    if (v == NULL)
        return -1;
    int t = get_true(v, inner);
    Py_DECREF(v);
    return t;
}

static int
is_none(PyObject *obj, int name)
{
    PyObject *v = PyObject_GetAttr(obj, N[name]);
    if (v == NULL)
        return -1;
    int t = v == Py_None;
    Py_DECREF(v);
    return t;
}

static int
call_method(PyObject *obj, int name)
{
    PyObject *r = PyObject_CallMethodNoArgs(obj, N[name]);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* seq_lt(a, b) and seq_le(a, b) of unik_tcpip.tcp.seq. */
static int
seq_lt(long long a, long long b)
{
    return ((a - b) & MASK) > HALF;
}

static int
seq_le(long long a, long long b)
{
    return a == b || seq_lt(a, b);
}

/* Connection._schedule: ask the driver for a timer call at deadline unless one comes sooner. */
static int
schedule(PyObject *tcb, long long deadline)
{
    long long armed;
    if (get_ll(tcb, N_ARMED, &armed) < 0)
        return -1;
    if (deadline && (!armed || deadline < armed)) {
        if (set_ll(tcb, N_ARMED, deadline) < 0 || set_ll(tcb, N_WAKE_AT, deadline) < 0)
            return -1;
    }
    return 0;
}

/* RttEstimator.sample (RFC 6298 2.2-2.5) and Connection._rtt_sample's stats.srtt. */
static int
rtt_sample(PyObject *rtt, PyObject *stats, long long rtt_ns)
{
    long long rttvar, srtt, lo, hi, min_rtt;
    if (rtt_ns < 1)
        rtt_ns = 1;
    if (get_ll(rtt, N_MIN_RTT_NS, &min_rtt) < 0 || ((!min_rtt || rtt_ns < min_rtt) && set_ll(rtt, N_MIN_RTT_NS, rtt_ns) < 0))
        return -1;
    PyObject *s = PyObject_GetAttr(rtt, N[N_SRTT_NS]);
    if (s == NULL)
        return -1;
    if (s == Py_None) {
        srtt = rtt_ns;
        rttvar = rtt_ns / 2;
    }
    else {
        long long old = PyLong_AsLongLong(s);
        if ((old == -1 && PyErr_Occurred()) || get_ll(rtt, N_RTTVAR_NS, &rttvar) < 0) {
            Py_DECREF(s);
            return -1;
        }
        long long dev = old > rtt_ns ? old - rtt_ns : rtt_ns - old;
        /* Python's // floors; these operands are never negative. */
        rttvar = (3 * rttvar + dev) / 4;
        srtt = (7 * old + rtt_ns) / 8;
    }
    Py_DECREF(s);
    if (get_ll(rtt, N_MIN_RTO_NS, &lo) < 0 || get_ll(rtt, N_MAX_RTO_NS, &hi) < 0)
        return -1;
    long long rto = srtt + (4 * rttvar > MS ? 4 * rttvar : MS);
    if (rto < lo)
        rto = lo;
    if (rto > hi)
        rto = hi;
    if (set_ll(rtt, N_RTTVAR_NS, rttvar) < 0 || set_ll(rtt, N_SRTT_NS, srtt) < 0 || set_ll(rtt, N_RTO_NS, rto) < 0)
        return -1;
    PyObject *f = PyFloat_FromDouble((double)srtt / 1e9);
    if (f == NULL)
        return -1;
    int rc = PyObject_SetAttr(stats, N[N_SRTT], f);
    Py_DECREF(f);
    return rc;
}

static int
add_ll(PyObject *obj, int name, long long n)
{
    long long v;
    if (get_ll(obj, name, &v) < 0)
        return -1;
    return set_ll(obj, name, v + n);
}

/* The fields and connection variables the prediction reads. */
typedef struct {
    long long flags, seq, ack, tsval, tsecr, window, start, end;
    long long rcv_nxt, una, snd_max, rcv_adv, ts_recent, snd_wnd, snd_nxt, wscale;
    int ts_ok;
} Seg;

/* 1: predicted; 0: not (nothing changed); -1: an error. */
static int
predict(PyObject *tcb, PyObject *fields, Py_ssize_t frame_len, Seg *s)
{
    PyObject *state = PyObject_GetAttr(tcb, N[N_STATE]);
    if (state == NULL)
        return -1;
    Py_DECREF(state); /* the enum member lives on in its class */
    if (state != ESTABLISHED && state != FIN_WAIT_1 && state != CLOSE_WAIT)
        return 0;
    long long hlen;
    if (get_ll(fields, N_FLAGS, &s->flags) < 0)
        return -1;
    if ((s->flags & CONTROL) != ACK)
        return 0;
    int t;
    if ((t = is_none(tcb, N_FIN_SEQ)) != 1)
        return t < 0 ? -1 : 0; /* our FIN left: segment_arrives moves the states */
    if (get_ll(fields, N_SEQ, &s->seq) < 0 || get_ll(fields, N_ACK, &s->ack) < 0
            || get_ll(fields, N_TSVAL, &s->tsval) < 0 || get_ll(tcb, N_RCV_NXT, &s->rcv_nxt) < 0)
        return -1;
    if ((s->ts_ok = get_true(tcb, N_TS_OK)) < 0)
        return -1;
    if (s->seq != s->rcv_nxt || (s->tsval >= 0) != s->ts_ok)
        return 0;
    if (get_ll(tcb, N_SND_UNA, &s->una) < 0 || get_ll(tcb, N_SND_MAX, &s->snd_max) < 0)
        return -1;
    long long ahead = (s->ack - s->una) & MASK;
    if (ahead > ((s->snd_max - s->una) & MASK))
        return 0;
    long long buf_seq;
    PyObject *snd = PyObject_GetAttr(tcb, N[N_SND]);
    if (snd == NULL)
        return -1;
    int rc = get_ll(snd, N_SEQ, &buf_seq);
    Py_DECREF(snd);
    if (rc < 0)
        return -1;
    if (buf_seq != s->una)
        return 0;
    if (get_ll(fields, N_TCP_START, &s->start) < 0 || get_ll(fields, N_HEADER_LEN, &hlen) < 0
            || get_ll(fields, N_TCP_END, &s->end) < 0)
        return -1;
    s->start += hlen;
    long long n = s->end - s->start;
    if (n < 0 || s->end > frame_len)
        return 0;
    if (n) {
        if (get_ll(tcb, N_RCV_ADV, &s->rcv_adv) < 0 || get_ll(tcb, N_TS_RECENT, &s->ts_recent) < 0)
            return -1;
        long long room = (s->rcv_adv - s->seq) & MASK;
        if (n > (room > HALF ? 0 : room) || (s->ts_ok && seq_lt(s->tsval, s->ts_recent)) || state == CLOSE_WAIT)
            return 0;
        if ((t = get_true(tcb, N_APP_CLOSED)) != 0)
            return t < 0 ? -1 : 0; /* data nobody reads: segment_arrives drops it */
    }
    else if (!ahead && s->una != s->snd_max)
        return 0;
    if (get_ll(fields, N_WINDOW, &s->window) < 0 || get_ll(tcb, N_SND_WSCALE, &s->wscale) < 0
            || get_ll(tcb, N_SND_WND, &s->snd_wnd) < 0 || get_ll(tcb, N_SND_NXT, &s->snd_nxt) < 0)
        return -1;
    s->window <<= s->wscale;
    if (!s->window || !s->snd_wnd || s->snd_nxt != s->snd_max)
        return 0;
    /* Recovery, SACK state, a probe, held data: segment_arrives decides. */
    if ((t = get_true(tcb, N_IN_RECOVERY)) != 0 || (t = get_true(tcb, N_DUPACKS)) != 0)
        return t < 0 ? -1 : 0;
    if ((t = is_none(tcb, N_TLP_END_SEQ)) != 1 || (t = is_none(tcb, N_DSACK)) != 1)
        return t < 0 ? -1 : 0;
    if ((t = get_inner_true(tcb, N_SCOREBOARD, N_RANGES)) != 0 || (t = get_inner_true(tcb, N_OOO, N_SEGMENTS)) != 0)
        return t < 0 ? -1 : 0;
    if ((t = get_true(tcb, N_READING_PAUSED)) != 0)
        return t < 0 ? -1 : 0;
    if ((t = get_inner_true(tcb, N_RCV, N_HELD)) != 0)
        return t < 0 ? -1 : 0;
    return 1;
}

/* The predicted segment's processing: RFC 9293 3.10.7.4's steps as segment_arrives takes them. */
static int
process(PyObject *tcb, PyObject *fields, const unsigned char *frame, long long now, Seg *s)
{
    PyObject *stats = NULL, *snd = NULL, *rtt = NULL, *timers = NULL, *r = NULL;
    int rc = -1;
    long long ahead = (s->ack - s->una) & MASK, n = s->end - s->start;
    if (set_ll(tcb, N_NOW, now) < 0 || (stats = PyObject_GetAttr(tcb, N[N_STATS])) == NULL
            || add_ll(stats, N_SEGMENTS_IN, 1) < 0 || set_ll(tcb, N_LAST_RX_NS, now) < 0
            || set_ll(tcb, N_KEEPALIVE_SENT, 0) < 0)
        goto done;
    if ((snd = PyObject_GetAttr(tcb, N[N_SND])) == NULL || (rtt = PyObject_GetAttr(tcb, N[N_RTT])) == NULL
            || (timers = PyObject_GetAttr(tcb, N[N_TIMERS])) == NULL)
        goto done;
    if (ahead) {
        /* Fifth, the ACK field: new data acknowledged. */
        PyObject *data = PyObject_GetAttr(snd, N[N_DATA]);
        if (data == NULL)
            goto done;
        int del = PySequence_DelSlice(data, 0, (Py_ssize_t)ahead);
        Py_DECREF(data);
        if (del < 0 || set_ll(snd, N_SEQ, s->ack) < 0 || set_ll(tcb, N_SND_UNA, s->ack) < 0)
            goto done;
        if (get_ll(fields, N_TSECR, &s->tsecr) < 0)
            goto done;
        if (s->ts_ok && s->tsecr) {
            /* RFC 7323 4.1: the sample from the echoed timestamp. */
            long long offset;
            if (get_ll(tcb, N_TS_OFFSET, &offset) < 0
                    || rtt_sample(rtt, stats, ((((now / MS + offset) & MASK) - s->tsecr) & MASK) * MS) < 0)
                goto done;
        }
        else {
            r = PyObject_CallMethod(rtt, "acked", "LL", s->ack, now);
            if (r == NULL)
                goto done;
            int took = PyObject_IsTrue(r);
            Py_CLEAR(r);
            if (took) {
                PyObject *v = PyObject_GetAttr(rtt, N[N_SRTT_NS]);
                if (v == NULL)
                    goto done;
                double srtt = v == Py_None ? 0.0 : PyLong_AsDouble(v);
                Py_DECREF(v);
                PyObject *f = PyFloat_FromDouble(srtt / 1e9);
                if (f == NULL)
                    goto done;
                int set = PyObject_SetAttr(stats, N[N_SRTT], f);
                Py_DECREF(f);
                if (set < 0)
                    goto done;
            }
        }
        if (set_ll(tcb, N_RETRIES, 0) < 0)
            goto done;
        /* Congestion control's growth outside recovery (Connection._on_new_ack). */
        long long mss;
        if (get_ll(tcb, N_SND_MSS, &mss) < 0)
            goto done;
        mss -= s->ts_ok ? 12 : 0;
        PyObject *cc = PyObject_GetAttr(tcb, N[N_CC]);
        PyObject *cwnd = cc == NULL ? NULL : PyObject_GetAttr(tcb, N[N_CWND]);
        PyObject *ssthresh = cwnd == NULL ? NULL : PyObject_GetAttr(tcb, N[N_SSTHRESH]);
        PyObject *srtt = ssthresh == NULL ? NULL : PyObject_GetAttr(rtt, N[N_SRTT_NS]);
        PyObject *acked = srtt == NULL ? NULL : PyLong_FromLongLong(ahead);
        PyObject *smss = acked == NULL ? NULL : PyLong_FromLongLong(mss);
        PyObject *when = smss == NULL ? NULL : PyLong_FromLongLong(now);
        if (when != NULL)
            r = PyObject_CallMethodObjArgs(cc, N[N_ON_ACK], cwnd, ssthresh, acked, smss, when, srtt, NULL);
        Py_XDECREF(acked);
        Py_XDECREF(smss);
        Py_XDECREF(when);
        Py_XDECREF(cc);
        Py_XDECREF(cwnd);
        Py_XDECREF(ssthresh);
        Py_XDECREF(srtt);
        if (r == NULL || PyObject_SetAttr(tcb, N[N_CWND], r) < 0 || set_ll(tcb, N_LIMITED_TRANSMIT, 0) < 0)
            goto done;
        Py_CLEAR(r);
        if (s->ack == s->snd_max) {
            if (set_ll(timers, N_RTO, 0) < 0 || set_ll(timers, N_PROBE, 0) < 0)
                goto done;
        }
        else {
            /* Connection._start_rto, then the probe (RFC 8985 7.2). */
            long long rto_ns;
            if (get_ll(rtt, N_RTO_NS, &rto_ns) < 0 || set_ll(timers, N_RTO, now + rto_ns) < 0
                    || schedule(tcb, now + rto_ns) < 0 || call_method(tcb, N_ARM_PROBE) < 0)
                goto done;
        }
    }
    /* The send window, when the segment is newer (RFC 9293 3.10.7.4). */
    long long wl1, wl2, max_wnd;
    if (get_ll(tcb, N_SND_WL1, &wl1) < 0 || get_ll(tcb, N_SND_WL2, &wl2) < 0)
        goto done;
    if (seq_lt(wl1, s->seq) || (wl1 == s->seq && seq_le(wl2, s->ack))) {
        if (set_ll(tcb, N_SND_WND, s->window) < 0 || set_ll(tcb, N_SND_WL1, s->seq) < 0
                || set_ll(tcb, N_SND_WL2, s->ack) < 0 || get_ll(tcb, N_MAX_SND_WND, &max_wnd) < 0)
            goto done;
        if (s->window > max_wnd && set_ll(tcb, N_MAX_SND_WND, s->window) < 0)
            goto done;
    }
    /* RFC 7323 4.3: TS.Recent from a segment covering Last.ACK.sent. */
    if (s->ts_ok) {
        long long last, recent;
        if (get_ll(tcb, N_LAST_ACK_SENT, &last) < 0 || get_ll(tcb, N_TS_RECENT, &recent) < 0)
            goto done;
        if (seq_le(s->seq, last) && !seq_lt(s->tsval, recent) && set_ll(tcb, N_TS_RECENT, s->tsval) < 0)
            goto done;
    }
    if (n) {
        /* Seventh, the segment text: in order, for a reading application. */
        if (set_ll(tcb, N_RCV_NXT, (s->seq + n) & MASK) < 0 || add_ll(stats, N_BYTES_IN, n) < 0)
            goto done;
        PyObject *rcv = PyObject_GetAttr(tcb, N[N_RCV]);
        PyObject *ready = rcv == NULL ? NULL : PyObject_GetAttr(rcv, N[N_READY]);
        Py_XDECREF(rcv);
        if (ready == NULL)
            goto done;
        PyObject *chunk = PyBytes_FromStringAndSize((const char *)frame + s->start, (Py_ssize_t)n);
        int appended = chunk == NULL ? -1 : PyList_Append(ready, chunk);
        Py_XDECREF(chunk);
        Py_DECREF(ready);
        if (appended < 0)
            goto done;
        /* Connection._ack_data: every second segment at once, else the delayed ACK. */
        long long unacked;
        if (get_ll(tcb, N_UNACKED_SEGMENTS, &unacked) < 0 || set_ll(tcb, N_UNACKED_SEGMENTS, unacked + 1) < 0)
            goto done;
        if (unacked + 1 >= 2) {
            if (call_method(tcb, N_SEND_ACK) < 0)
                goto done;
        }
        else {
            long long pending, delay;
            if (get_ll(timers, N_DELAYED_ACK, &pending) < 0)
                goto done;
            if (!pending) {
                PyObject *cfg = PyObject_GetAttr(tcb, N[N_CFG]);
                if (cfg == NULL)
                    goto done;
                int got = get_ll(cfg, N_DELAYED_ACK_NS, &delay);
                Py_DECREF(cfg);
                if (got < 0 || set_ll(timers, N_DELAYED_ACK, now + delay) < 0 || schedule(tcb, now + delay) < 0)
                    goto done;
            }
        }
    }
    /* Connection.output, when anything waits to be sent. */
    int fin = get_true(tcb, N_FIN_QUEUED);
    long long snd_nxt, buf_seq;
    if (fin < 0 || get_ll(tcb, N_SND_NXT, &snd_nxt) < 0 || get_ll(snd, N_SEQ, &buf_seq) < 0)
        goto done;
    PyObject *data = PyObject_GetAttr(snd, N[N_DATA]);
    if (data == NULL)
        goto done;
    Py_ssize_t buffered = PyObject_Length(data);
    Py_DECREF(data);
    if (buffered < 0)
        goto done;
    if ((fin || ((snd_nxt - buf_seq) & MASK) != buffered) && call_method(tcb, N_OUTPUT) < 0)
        goto done;
    rc = 0;
done:
    Py_XDECREF(r);
    Py_XDECREF(stats);
    Py_XDECREF(snd);
    Py_XDECREF(rtt);
    Py_XDECREF(timers);
    return rc;
}

/* -- transmit: Connection.output's common case ---------------------------------------- */

#define PSH 0x08
#define TSO_MAX (65535 - 20 - 60) /* the largest TCP payload an IPv4 super-frame can carry */
#define WC_DEL_ACK (200 * MS)    /* RFC 8985 7.2: the worst-case delayed-ACK time of a lone segment */
#define PTO_MIN (10 * MS)

/* Connection._arm_probe: a tail loss probe timeout (RFC 8985 7.2) unless the RTO comes sooner. */
static int
arm_probe(PyObject *tcb, PyObject *timers, PyObject *rtt, long long now, long long una, long long snd_max,
          long long eff_mss)
{
    int t;
    if (set_ll(timers, N_PROBE, 0) < 0)
        return -1;
    PyObject *cfg = PyObject_GetAttr(tcb, N[N_CFG]);
    if (cfg == NULL)
        return -1;
    t = get_true(cfg, N_TLP);
    Py_DECREF(cfg);
    if (t != 1 || (t = get_true(tcb, N_SACK_OK)) != 1)
        return t < 0 ? -1 : 0;
    if ((t = get_true(tcb, N_IN_RECOVERY)) != 0 || (t = get_true(tcb, N_RETRIES)) != 0)
        return t < 0 ? -1 : 0;
    if ((t = is_none(tcb, N_TLP_END_SEQ)) != 1)
        return t < 0 ? -1 : 0;
    if (una == snd_max)
        return 0;
    PyObject *s = PyObject_GetAttr(rtt, N[N_SRTT_NS]);
    if (s == NULL)
        return -1;
    if (s == Py_None) {
        Py_DECREF(s);
        return 0;
    }
    long long srtt = PyLong_AsLongLong(s);
    Py_DECREF(s);
    if (srtt == -1 && PyErr_Occurred())
        return -1;
    long long pto = 2 * srtt, rto;
    if (((snd_max - una) & MASK) <= eff_mss)
        pto += WC_DEL_ACK; /* the peer may hold its ACK of a lone segment */
    long long at = now + (pto > PTO_MIN ? pto : PTO_MIN);
    if (get_ll(timers, N_RTO, &rto) < 0)
        return -1;
    if (rto && at >= rto)
        return 0;
    if (set_ll(timers, N_PROBE, at) < 0)
        return -1;
    return schedule(tcb, at);
}

/* Connection._window_field: the window to advertise, scaled (RFC 7323 2.3), opened in
 * useful steps (RFC 9293 3.8.6.2.2), never shrinking (3.8.6); RCV.ADV follows. */
static long long
window_field(PyObject *tcb, PyObject *cfg, long long rcv_nxt, long long snd_mss)
{
    long long shift, rcv_buf, capacity, rcv_adv;
    if (get_ll(tcb, N_RCV_WSCALE, &shift) < 0 || get_ll(cfg, N_RCV_BUF, &rcv_buf) < 0
            || get_ll(tcb, N_RCV_ADV, &rcv_adv) < 0)
        return -1;
    PyObject *rcv = PyObject_GetAttr(tcb, N[N_RCV]);
    if (rcv == NULL)
        return -1;
    PyObject *held = PyObject_GetAttr(rcv, N[N_HELD]);
    int got = get_ll(rcv, N_CAPACITY, &capacity);
    Py_DECREF(rcv);
    if (held == NULL || got < 0) {
        Py_XDECREF(held);
        return -1;
    }
    Py_ssize_t held_len = PyObject_Length(held);
    Py_DECREF(held);
    if (held_len < 0)
        return -1;
    long long top = 0xffffLL << shift;
    long long wnd = capacity - held_len;
    if (wnd < 0)
        wnd = 0;
    else if (wnd > top)
        wnd = top;
    long long current = (rcv_adv - rcv_nxt) & MASK;
    if (current > HALF)
        current = 0;
    else if (current > rcv_buf)
        current = rcv_buf;
    long long step = rcv_buf / 2 < snd_mss ? rcv_buf / 2 : snd_mss;
    if (wnd > current && wnd - current < step)
        wnd = current;
    if (wnd < current)
        wnd = current;
    if (wnd > top)
        wnd = top;
    long long field = wnd >> shift;
    if (field > 0xffff)
        field = 0xffff;
    long long edge = (rcv_nxt + (field << shift)) & MASK;
    if (((rcv_adv - edge) & MASK) > HALF && set_ll(tcb, N_RCV_ADV, edge) < 0)
        return -1;
    return field;
}

/* What output reads once per call. */
typedef struct {
    PyObject *tcb, *cfg, *timers, *rtt, *stats, *outbox, *link, *src, *dst;
    PyObject *rack; /* the connection's Rack with SACK (RFC 8985 3), else NULL */
    long long sport, dport, headroom, gso_tcp, now, ts_ok, ts_offset, snd_mss, eff_mss, una;
} Tx;

/* Connection._send for <SEQ=seq><ACK=RCV.NXT><CTL=ACK[,PSH]> carrying n bytes of payload. */
static int
send_data(Tx *x, long long seq, unsigned flags, const unsigned char *payload, Py_ssize_t n)
{
    long long rcv_nxt, tsval = -1, tsecr = -1, ident = 0, ttl = 0, unacked;
    if (get_ll(x->tcb, N_RCV_NXT, &rcv_nxt) < 0)
        return -1;
    if (x->ts_ok) {
        /* RFC 7323 3.2: once negotiated, every non-RST segment carries timestamps. */
        if (get_ll(x->tcb, N_TS_RECENT, &tsecr) < 0)
            return -1;
        tsval = (x->now / MS + x->ts_offset) & MASK;
    }
    long long window = window_field(x->tcb, x->cfg, rcv_nxt, x->snd_mss);
    if (window < 0 || set_ll(x->tcb, N_LAST_ACK_SENT, rcv_nxt) < 0 || set_ll(x->timers, N_DELAYED_ACK, 0) < 0
            || get_ll(x->tcb, N_UNACKED_SEGMENTS, &unacked) < 0
            || (unacked && set_ll(x->tcb, N_UNACKED_SEGMENTS, 0) < 0) || add_ll(x->stats, N_SEGMENTS_OUT, 1) < 0)
        return -1;
    if (x->link != Py_None) {
        if (get_ll(x->tcb, N_IP_IDENT, &ident) < 0 || get_ll(x->tcb, N_LINK_TTL, &ttl) < 0
                || set_ll(x->tcb, N_IP_IDENT, (ident + 1) & 0xffff) < 0)
            return -1;
        if (ttl < 0 || ttl > 0xff) {
            PyErr_SetString(PyExc_ValueError, "output: link_ttl is out of range");
            return -1;
        }
    }
    int partial = n > x->eff_mss; /* a super-segment: the NIC cuts it and completes each checksum */
    PyObject *frame = build_frame(x->link == Py_None ? NULL : (const unsigned char *)PyBytes_AS_STRING(x->link),
                                  (const unsigned char *)PyBytes_AS_STRING(x->src),
                                  (const unsigned char *)PyBytes_AS_STRING(x->dst), PyBytes_GET_SIZE(x->src),
                                  (unsigned)x->sport, (unsigned)x->dport, (unsigned long)seq, (unsigned long)rcv_nxt,
                                  flags, (unsigned)window, tsval, tsecr, NULL, 0, payload, n, (unsigned)ident,
                                  (unsigned)ttl, partial);
    if (frame == NULL)
        return -1;
    PyObject *offload = Py_None;
    Py_INCREF(offload);
    if (partial) {
        Py_DECREF(offload);
        offload = PyObject_CallFunction(TxOffload, "LiLLL", x->headroom, 16, x->gso_tcp, x->eff_mss,
                                        x->headroom + TCP_LEN_ + (x->ts_ok ? 12 : 0));
        if (offload == NULL) {
            Py_DECREF(frame);
            return -1;
        }
    }
    PyObject *entry = PyTuple_Pack(2, frame, offload);
    Py_DECREF(frame);
    Py_DECREF(offload);
    if (entry == NULL)
        return -1;
    int rc = PyList_Append(x->outbox, entry);
    Py_DECREF(entry);
    if (rc == 0 && x->rack != NULL) {
        /* RFC 8985 6.1: when the segment left (Rack.sent_segment, as Connection._send records it). */
        PyObject *r = PyObject_CallMethod(x->rack, "sent_segment", "LLLL", seq, (seq + n) & MASK, x->now, x->una);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return rc;
}

/* An address and port of a (bytes, int) pair; 0, or -1 with an exception. */
static int
endpoint(PyObject *pair, PyObject **addr, long long *port)
{
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(pair, 0))) {
        PyErr_SetString(PyExc_TypeError, "output: local and remote are (bytes, int) pairs");
        return -1;
    }
    *addr = PyTuple_GET_ITEM(pair, 0);
    *port = PyLong_AsLongLong(PyTuple_GET_ITEM(pair, 1));
    return (*port == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* 1: done; 0: Connection.output goes on; -1: an error. */
static int
output_common(Tx *x, PyObject *snd, PyObject *data)
{
    PyObject *tcb = x->tcb, *path = NULL;
    int t, rc = -1;
    long long snd_nxt, buf_seq, snd_max, una, tso, ip_header_len, max_burst, last_send, rto_ns, cwnd;
    Py_ssize_t buffered = PyByteArray_GET_SIZE(data);
    if (get_ll(tcb, N_SND_NXT, &snd_nxt) < 0 || get_ll(snd, N_SEQ, &buf_seq) < 0)
        return -1;
    long long off = (snd_nxt - buf_seq) & MASK;
    if (off == buffered)
        return 1; /* everything buffered has been sent (the common case after an ACK) */
    if (get_ll(tcb, N_SND_MAX, &snd_max) < 0)
        return -1;
    if (off > buffered || snd_nxt != snd_max)
        return 0; /* a retransmission pending (SND.NXT went back) */
    if ((t = get_true(tcb, N_SACK_OK)) != 0) {
        if (t < 0 || (t = get_inner_true(tcb, N_OOO, N_SEGMENTS)) != 0 || (t = is_none(tcb, N_DSACK)) != 1)
            return t < 0 ? -1 : 0; /* SACK blocks to report: _send builds them */
        if ((t = get_true(x->cfg, N_RACK)) < 0 || (t && (x->rack = PyObject_GetAttr(tcb, N[N_RACK])) == NULL))
            return -1;
    }
    if ((path = PyObject_GetAttr(tcb, N[N_PATH])) == NULL)
        return -1;
    if (get_ll(path, N_HEADROOM, &x->headroom) < 0 || get_ll(path, N_IP_HEADER_LEN, &ip_header_len) < 0
            || get_ll(path, N_GSO_TCP, &x->gso_tcp) < 0 || (tso = get_true(path, N_TSO)) < 0)
        goto done;
    if (x->link == Py_None ? x->headroom != 14 + ip_header_len
            : !PyBytes_Check(x->link) || PyBytes_GET_SIZE(x->link) != 14) {
        rc = 0;
        goto done;
    }
    if (get_ll(tcb, N_SND_MSS, &x->snd_mss) < 0 || (x->ts_ok = get_true(tcb, N_TS_OK)) < 0
            || get_ll(tcb, N_TS_OFFSET, &x->ts_offset) < 0 || get_ll(x->cfg, N_MAX_BURST, &max_burst) < 0
            || get_ll(tcb, N_NOW, &x->now) < 0 || get_ll(tcb, N_SND_UNA, &una) < 0 || (x->una = una, 0)
            || get_ll(tcb, N_LAST_SEND_NS, &last_send) < 0 || get_ll(x->rtt, N_RTO_NS, &rto_ns) < 0)
        goto done;
    long long mss = x->eff_mss = x->snd_mss - (x->ts_ok ? 12 : 0);
    if (mss <= 0) {
        rc = 0;
        goto done;
    }
    long long limit = tso ? (TSO_MAX / mss * mss > mss ? TSO_MAX / mss * mss : mss) : mss;
    long long budget = max_burst * mss > (tso ? 8 * limit : limit) ? max_burst * mss : (tso ? 8 * limit : limit);
    if (una == snd_nxt && last_send && x->now - last_send > rto_ns) {
        /* RFC 5681 4.1: restart from at most the initial window after an idle RTO. */
        long long initial = 2 * mss > 4380 ? 2 * mss : 4380;
        if (initial > 4 * mss)
            initial = 4 * mss;
        if (get_ll(tcb, N_CWND, &cwnd) < 0 || (cwnd > initial && set_ll(tcb, N_CWND, initial) < 0))
            goto done;
    }
    for (;;) {
        long long limited, snd_wnd, burst_used, rto, probe;
        long long avail = buffered - off, in_flight = (snd_nxt - una) & MASK;
        if (get_ll(tcb, N_CWND, &cwnd) < 0 || get_ll(tcb, N_LIMITED_TRANSMIT, &limited) < 0
                || get_ll(tcb, N_SND_WND, &snd_wnd) < 0)
            goto done;
        long long wnd = cwnd + limited < snd_wnd ? cwnd + limited : snd_wnd;
        long long n = wnd - in_flight;
        if (avail < n)
            n = avail;
        if (limit < n)
            n = limit;
        if (n <= 0) {
            /* Nothing the windows allow; a zero window with nothing in flight is probed (output). */
            rc = !(snd_wnd == 0 && in_flight == 0);
            goto done;
        }
        if (get_ll(tcb, N_BURST_USED, &burst_used) < 0)
            goto done;
        if (burst_used >= budget) {
            /* A bounded burst: the driver resumes on its next turn. */
            rc = PyObject_SetAttr(tcb, N[N_OUTPUT_PENDING], Py_True) < 0 ? -1 : 1;
            goto done;
        }
        if (n < mss) {
            long long max_wnd;
            if (n == avail) {
                if (in_flight > 0 && (t = get_true(tcb, N_NODELAY)) != 1) {
                    rc = t < 0 ? -1 : 1; /* Nagle: hold a small segment while data is unacknowledged */
                    goto done;
                }
            }
            else {
                if (get_ll(tcb, N_MAX_SND_WND, &max_wnd) < 0)
                    goto done;
                if (n < max_wnd / 2 && in_flight > 0) {
                    rc = 1; /* sender SWS avoidance */
                    goto done;
                }
            }
        }
        long long seq = snd_nxt;
        if (send_data(x, seq, n == avail ? ACK | PSH : ACK,
                      (const unsigned char *)PyByteArray_AS_STRING(data) + off, (Py_ssize_t)n) < 0)
            goto done;
        snd_nxt = (seq + n) & MASK;
        if (set_ll(tcb, N_BURST_USED, burst_used + n) < 0 || set_ll(tcb, N_LAST_SEND_NS, x->now) < 0
                || add_ll(x->stats, N_BYTES_OUT, n) < 0 || set_ll(tcb, N_SND_NXT, snd_nxt) < 0
                || set_ll(tcb, N_SND_MAX, snd_nxt) < 0)
            goto done;
        if (!x->ts_ok) {
            /* Karn's timed segment (RFC 6298 3): RttEstimator.time. */
            PyObject *r = PyObject_CallMethod(x->rtt, "time", "LL", seq, x->now);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
        if (get_ll(x->timers, N_RTO, &rto) < 0)
            goto done;
        if (!rto) {
            /* Connection._start_rto. */
            if (get_ll(x->rtt, N_RTO_NS, &rto_ns) < 0 || set_ll(x->timers, N_RTO, x->now + rto_ns) < 0
                    || schedule(tcb, x->now + rto_ns) < 0)
                goto done;
        }
        if (get_ll(x->timers, N_PROBE, &probe) < 0)
            goto done;
        if (!probe && arm_probe(tcb, x->timers, x->rtt, x->now, una, snd_nxt, mss) < 0)
            goto done;
        if (set_ll(x->timers, N_PERSIST, 0) < 0)
            goto done;
        off += n;
        if (off == buffered) {
            rc = 1;
            goto done;
        }
    }
done:
    Py_XDECREF(path);
    return rc;
}

PyDoc_STRVAR(output_doc,
"output(tcb, /) -> bool\n\n"
"Connection.output's common case: True when it is done; False hands the rest to\n"
"Connection.output's loop.");

static PyObject *
output(PyObject *Py_UNUSED(module), PyObject *tcb)
{
    if (ensure_states() < 0)
        return NULL;
    PyObject *state = PyObject_GetAttr(tcb, N[N_STATE]);
    if (state == NULL)
        return NULL;
    Py_DECREF(state);
    if (state != ESTABLISHED && state != CLOSE_WAIT)
        Py_RETURN_FALSE;
    int t = get_true(tcb, N_FIN_QUEUED);
    if (t != 0) {
        if (t < 0)
            return NULL;
        Py_RETURN_FALSE;
    }
    if (TxOffload == NULL) {
        PyObject *mod = PyImport_ImportModule("unik.devices");
        TxOffload = mod == NULL ? NULL : PyObject_GetAttrString(mod, "TxOffload");
        Py_XDECREF(mod);
        if (TxOffload == NULL)
            return NULL;
    }
    Tx x = {.tcb = tcb};
    PyObject *snd = NULL, *data = NULL, *local = NULL, *remote = NULL;
    int rc = -1;
    if ((snd = PyObject_GetAttr(tcb, N[N_SND])) == NULL || (data = PyObject_GetAttr(snd, N[N_DATA])) == NULL)
        goto done;
    if (!PyByteArray_Check(data)) {
        rc = 0;
        goto done;
    }
    if ((x.cfg = PyObject_GetAttr(tcb, N[N_CFG])) == NULL || (x.timers = PyObject_GetAttr(tcb, N[N_TIMERS])) == NULL
            || (x.rtt = PyObject_GetAttr(tcb, N[N_RTT])) == NULL || (x.stats = PyObject_GetAttr(tcb, N[N_STATS])) == NULL
            || (x.outbox = PyObject_GetAttr(tcb, N[N_OUTBOX])) == NULL || (x.link = PyObject_GetAttr(tcb, N[N_LINK])) == NULL
            || (local = PyObject_GetAttr(tcb, N[N_LOCAL])) == NULL || (remote = PyObject_GetAttr(tcb, N[N_REMOTE])) == NULL)
        goto done;
    if (!PyList_Check(x.outbox)) {
        PyErr_SetString(PyExc_TypeError, "output: the outbox is a list");
        goto done;
    }
    if (endpoint(local, &x.src, &x.sport) < 0 || endpoint(remote, &x.dst, &x.dport) < 0)
        goto done;
    Py_ssize_t alen = PyBytes_GET_SIZE(x.src);
    if ((alen != 4 && alen != 16) || PyBytes_GET_SIZE(x.dst) != alen || x.sport < 0 || x.sport > 0xffff
            || x.dport < 0 || x.dport > 0xffff) {
        PyErr_SetString(PyExc_ValueError, "output: addresses are 4 or 16 bytes, ports 16 bits");
        goto done;
    }
    rc = output_common(&x, snd, data);
done:
    Py_XDECREF(snd);
    Py_XDECREF(data);
    Py_XDECREF(local);
    Py_XDECREF(remote);
    Py_XDECREF(x.cfg);
    Py_XDECREF(x.timers);
    Py_XDECREF(x.rtt);
    Py_XDECREF(x.stats);
    Py_XDECREF(x.outbox);
    Py_XDECREF(x.link);
    Py_XDECREF(x.rack);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc);
}

PyDoc_STRVAR(established_doc,
"established(tcb, frame, fields, now, /) -> bool\n\n"
"Process the segment fields describes (in frame) if it is an established connection's\n"
"predicted case; False, with nothing changed, for everything segment_arrives must see.");

static PyObject *
established(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "established() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *tcb = args[0], *frame = args[1], *fields = args[2];
    long long now = PyLong_AsLongLong(args[3]);
    if (now == -1 && PyErr_Occurred())
        return NULL;
    if (ensure_states() < 0)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Seg s;
    int rc = predict(tcb, fields, view.len, &s);
    if (rc == 1)
        rc = process(tcb, fields, view.buf, now, &s) < 0 ? -1 : 1;
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    return PyBool_FromLong(rc);
}

static PyMethodDef methods[] = {
    {"established", (PyCFunction)(void (*)(void))established, METH_FASTCALL, established_doc},
    {"output", output, METH_O, output_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_predict",
    "Header prediction for established TCP connections (receive and transmit), in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__predict(void)
{
    for (int i = 0; i < N_COUNT; i++) {
        if (N[i] == NULL && (N[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return NULL;
    }
    if (build_frame == NULL && (build_frame = import_tcp_frame()) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
