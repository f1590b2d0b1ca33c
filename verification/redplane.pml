/*
 * RedPlane replication protocol (docs/protocol.md) for one flow key, checked with spin.
 *
 * Two switches (crash, restart empty), a store chain of two replicas (head and tail; one
 * of them may fail), a network between switches and store that loses, duplicates and
 * reorders, a FIFO reliable chain link, and a discrete clock for the leases.
 * verification/README.md lists the bounds, the abstractions, and the four design fixes
 * (marked FIX below) without which the properties fail.
 *
 * Selection at compile time (spin -D...):
 *   one property:  PROP_MUTEX PROP_ACKED PROP_RESUME PROP_OUTPUT PROP_MONO LIVENESS
 *   one known bug: BUG_GRANT_WHILE_VALID BUG_RELEASE_BEFORE_ACK BUG_NO_WRAP
 *                  BUG_ACK_BEFORE_TAIL BUG_NO_RETRY
 *   one rule of docs/protocol.md as written, undoing a FIX:
 *                  DOC_PENDING_SINCE DOC_NO_FENCE DOC_REACK_OLDER DOC_INSTALL_RULE
 */

/* ---------------------------------------------------------------- bounds */
#define L        2     /* store lease period, ticks */
#define LS       2     /* switch lease period, ticks (LS <= L) */
#define MAXW     2     /* write ids 1..MAXW; id 0 = the initial value */
#ifndef WRITES
#define WRITES   MAXW  /* writes the switches may create (the liveness run: 0) */
#endif
#define W        2     /* unacknowledged writes a switch may have for the flow */
#define F        3     /* FIX 2: seq advance of a lease grant (fence); F > W */
#define NRQ      2     /* request slots, switches -> head (code below assumes 2) */
#define NAK      2     /* ack slots, tail -> switches (code below assumes 2) */
#define NCH      2     /* chain link capacity, head -> tail */
#ifndef PKTS
#define PKTS     4     /* packets routed to the switches (safety runs) */
#endif
#ifndef FAULTS
#define FAULTS   2     /* message losses + request duplications + switch crashes +
                          replica failures, in any mix */
#endif
#define CRASHES  1     /* at most this many switch crashes (safety runs: by symmetry
                          only switch 0 needs to crash) */
#define ROUTES   1     /* routing changes (liveness runs) */
#define NONE     2     /* no switch */

/* ------------------------------------------------------- sequence numbers */
/* 6-bit space, 0 reserved for reads: after 63 comes 1. The run starts close to the wrap. */
#define M        64
#define HALF     32
#define SEQ0     59
#define NEXT(n)     ((n) % (M - 1) + 1)
#define ADV(n, k)   (((n) - 1 + (k)) % (M - 1) + 1)
#define DIFF(a, b)  (((a) - (b) + M) % M)
#ifdef BUG_NO_WRAP
#define NEWER(a, b) ((a) > (b))                               /* BUG: plain comparison */
#else
#define NEWER(a, b) (DIFF(a, b) > 0 && DIFF(a, b) < HALF)     /* RFC 1982 serial numbers */
#endif
/* ghost: how far a seq is from SEQ0 (a run advances fewer than HALF steps) */
#define DIST(n)     (((n) - SEQ0 + (M - 1)) % (M - 1))

/* ------------------------------------------------------------- messages */
/* One message = one packed short: type, switch, incarnation, seq, value, rem.
 * rem: switch-lease ticks left from the request's send time (FIX 1: lease acks echo the
 * send time); every tick lowers it while the message is in flight. 0 = empty slot. */
#define PACK(ty, sw, in, sq, vl, rm) ((((((ty) * 2 + (sw)) * 2 + (in)) * 64 + (sq)) * 8 + (vl)) * 4 + (rm))
#define MT(m) ((m) / 8192)
#define MS(m) (((m) / 4096) % 2)
#define MI(m) (((m) / 2048) % 2)
#define MQ(m) (((m) / 32) % 64)
#define MV(m) (((m) / 4) % 8)
#define MR(m) ((m) % 4)

#define RQ_NEW    1    /* LEASE_NEW */
#define RQ_RENEW  2    /* LEASE_RENEW: seq 0 = renewal, else a write (value = write id) */
#define AK_LEASE  1    /* NEW_ACK / MIGRATE_ACK: committed seq and value */
#define AK_RENEW  2    /* RENEW_ACK: seq 0 = renewal, else a write (value = its output) */
#define CH_GRANT  1    /* chain link: lease grant (seq = fenced seq, value = committed) */
#define CH_RENEW  2
#define CH_WRITE  3

#define BIT(w) (1 << (w))

/* ---------------------------------------------------------------- state */
short rq[NRQ];                  /* switches -> head: a bag, delivered in any order */
short ak[NAK];                  /* tail -> switches: a bag, delivered in any order */
chan chain = [NCH] of { short };/* head -> tail: FIFO, reliable */

/* switches 0 and 1 */
bit  inc[2];                    /* incarnation, flips on restart (FIX 1: boot time) */
byte lease[2];                  /* local lease ticks left, 0 = none */
bit  hs[2];                     /* the flow's state is in the registers */
byte sseq[2];                   /* the flow's seq */
byte sval[2];                   /* the flow's value (a write id) */
byte out[2];                    /* unacknowledged writes the retransmission agent holds */
#ifdef DOC_PENDING_SINCE
byte pend[2];                   /* ticks since pending_since; NO_PEND = none pending */
#define NO_PEND 255
#endif
#ifdef BUG_NO_RETRY
bit  asked[2];                  /* a LEASE_NEW is unanswered */
#define MAY_ASK(sw) !asked[sw]
#else
#define MAY_ASK(sw) true
#endif
#ifdef LIVENESS
bit  credit[2];                 /* one packet per switch per tick */
bit  rto[2];                    /* one retransmission per switch per tick */
byte route;                     /* the switch routing sends the flow to */
#endif

/* store replicas 0 and 1 */
byte head, tail;
byte own[2];                    /* lease owner */
byte sexp;                      /* head: lease ticks left */
byte cseq[2];                   /* committed seq */
byte cval[2];                   /* committed value (a write id) */
byte qd[2];                     /* head's queued LEASE_NEW per switch, 0 = none */
#define QUEUED(in, rm) (1 + (in) * 4 + (rm))
#define Q_INC(sw) ((qd[sw] - 1) / 4)
#define Q_REM(sw) ((qd[sw] - 1) % 4)

/* environment budgets */
byte pkts = PKTS, faults = FAULTS, crashes = CRASHES, routes = ROUTES;

/* writes: ids, seqs, and (ghost, only where a property needs it) history */
byte nw;                        /* writes created so far */
byte wseq[MAXW + 1];            /* each write's seq */
#if defined(PROP_ACKED) || defined(PROP_OUTPUT)
byte anc[MAXW + 1];             /* the writes each write builds on, itself included */
#define SET_ANC(w, base) anc[w] = anc[base] | BIT(w)
#else
#define SET_ANC(w, base) skip
#endif
#ifdef PROP_ACKED
byte acked;                     /* writes a switch holds as acknowledged */
#define MARK_ACKED(w) acked = acked | BIT(w)
#else
#define MARK_ACKED(w) skip
#endif

hidden byte ix, jx, mty, msw, minc, mseq, mval, mrem;
hidden short xm, ym;

/* -------------------------------------------------------------- properties */
/* P1 at most one switch acts on the flow's state with a valid lease */
#ifdef PROP_MUTEX
#define CHECK_MUTEX() assert(!(lease[0] > 0 && hs[0] && lease[1] > 0 && hs[1]))
#else
#define CHECK_MUTEX() skip
#endif
/* P2 no acknowledged write is lost: each is in the head's committed history */
#ifdef PROP_ACKED
#define CHECK_ACKED() assert((acked & ~anc[cval[head]]) == 0)
#else
#define CHECK_ACKED() skip
#endif
/* P3 a switch taking over installs the last committed value, and a seq no older than
 * the last committed write's */
#ifdef PROP_RESUME
#define CHECK_RESUME(sw) assert(sval[sw] == cval[tail] && !NEWER(wseq[cval[tail]], sseq[sw]))
#else
#define CHECK_RESUME(sw) skip
#endif
/* P4 a write's output leaves the switch only once the write is committed (at the tail) */
#ifdef PROP_OUTPUT
#define CHECK_OUTPUT(w) assert(anc[cval[tail]] & BIT(w))
#else
#define CHECK_OUTPUT(w) skip
#endif
/* P5 a replica never commits an older write after a newer one */
#ifdef PROP_MONO
#define CHECK_MONO(rep, sq) assert(DIST(sq) > DIST(cseq[rep]))
#else
#define CHECK_MONO(rep, sq) skip
#endif
/* P6 a live switch that keeps receiving the flow's packets eventually holds its lease */
#ifdef LIVENESS
ltl live { (<>[] (route == 0)) -> ([]<> (lease[0] > 0 && hs[0])) }
#endif

/* ---------------------------------------------------------------- helpers */
/* Network slots are kept sorted (messages first, descending) so that states which differ
 * only in slot order are one state. */
#define SORT2(a) if :: a[0] < a[1] -> ym = a[0]; a[0] = a[1]; a[1] = ym :: else fi
#define PUT(a, m) a[1] = m; SORT2(a)            /* caller checks that a[1] is free */
#define TAKE(a, k) a[k] = 0; SORT2(a)
#define AGE(a, k) if :: MR(a[k]) > 0 -> a[k] = a[k] - 1 :: else fi
#define ROOM(a) (a[1] == 0)
#define CH_ROOM (len(chain) < NCH)

inline age_chain() {            /* a tick passes for the chain link's messages */
  ix = len(chain);
  do
  :: ix > 0 ->
     chain?xm;
     if :: MR(xm) > 0 -> xm = xm - 1 :: else fi;
     chain!xm;
     ix--
  :: else -> break
  od;
  skip                          /* a d_step must not end with a loop's break */
}

inline drain_chain() {
  do :: nempty(chain) -> chain?xm :: empty(chain) -> break od;
  skip
}

/* ------------------------------------------------------------------ store */
#ifdef BUG_GRANT_WHILE_VALID
#define GRANTABLE(sw) true                                                  /* BUG */
#else
#define GRANTABLE(sw) (own[head] == NONE || sexp == 0 || own[head] == sw)
#endif

/* FIX 3: the tail acks a write only if it is the latest committed one */
#ifdef DOC_REACK_OLDER
#define ACK_RULE(sq, c) ((sq) == (c) || NEWER(c, sq))
#else
#define ACK_RULE(sq, c) ((sq) == (c))
#endif

#ifdef BUG_ACK_BEFORE_TAIL
#define HEAD_AK_ROOM && ROOM(ak)
#else
#define HEAD_AK_ROOM
#endif

inline commit(rep, sq, vl) {
  CHECK_MONO(rep, sq);
  cseq[rep] = sq;
  cval[rep] = vl;
  CHECK_ACKED()
}

inline grant(sw, in, rm) {      /* the head grants the lease to sw */
  minc = in;
  mrem = rm;
  own[head] = sw;
  sexp = L;
  qd[sw] = 0;
#ifndef DOC_NO_FENCE
  cseq[head] = ADV(cseq[head], F);      /* FIX 2: every older write is now stale */
#endif
  chain!PACK(CH_GRANT, sw, minc, cseq[head], cval[head], mrem)
}

inline head_request(m) {        /* the head handles one request */
  mty = MT(m); msw = MS(m); minc = MI(m); mseq = MQ(m); mval = MV(m); mrem = MR(m);
  if
  :: mty == RQ_NEW && GRANTABLE(msw) -> grant(msw, minc, mrem)
  :: mty == RQ_NEW && !GRANTABLE(msw) -> qd[msw] = QUEUED(minc, mrem)   /* one per switch */
  :: mty == RQ_RENEW && own[head] == msw && mseq == 0 ->
     sexp = L;
     chain!PACK(CH_RENEW, msw, minc, 0, 0, mrem)
  :: mty == RQ_RENEW && own[head] == msw && mseq != 0 ->
     if
     :: NEWER(mseq, cseq[head]) -> commit(head, mseq, mval); sexp = L
     :: else                                           /* duplicate or old: a no-op */
     fi;
#ifdef BUG_ACK_BEFORE_TAIL
     if :: ACK_RULE(mseq, cseq[head]) -> PUT(ak, PACK(AK_RENEW, msw, 0, mseq, mval, 0))
        :: else fi;
#endif
     chain!PACK(CH_WRITE, msw, 0, mseq, mval, 0)
  :: mty == RQ_RENEW && own[head] != msw -> skip                       /* refused */
  fi
}

inline tail_apply(m) {          /* the tail applies one chain message and acks */
  mty = MT(m); msw = MS(m); minc = MI(m); mseq = MQ(m); mval = MV(m); mrem = MR(m);
  if
  :: mty == CH_GRANT ->
     if :: head != tail -> own[tail] = msw; cseq[tail] = mseq :: else fi;
     PUT(ak, PACK(AK_LEASE, msw, minc, mseq, mval, mrem))
  :: mty == CH_RENEW ->
     if :: head != tail -> own[tail] = msw :: else fi;
     PUT(ak, PACK(AK_RENEW, msw, minc, 0, 0, mrem))
  :: mty == CH_WRITE ->
     if
     :: head != tail && NEWER(mseq, cseq[tail]) -> commit(tail, mseq, mval)
     :: else
     fi;
#ifndef BUG_ACK_BEFORE_TAIL
     if :: ACK_RULE(mseq, cseq[tail]) -> PUT(ak, PACK(AK_RENEW, msw, 0, mseq, mval, 0))
        :: else fi
#endif
  fi
}

/* ----------------------------------------------------------------- switch */
/* FIX 1: a lease ack counts only if the request it answers was sent by this incarnation
 * of the switch, less than LS ticks ago; the lease then runs LS from that send time. */
#ifdef DOC_PENDING_SINCE
#define FRESH(sw, in, rm)   (pend[sw] != NO_PEND && pend[sw] < LS)
#define LEASE_LEFT(sw, rm)  (LS - pend[sw])
#else
#define FRESH(sw, in, rm)   ((rm) > 0 && (in) == inc[sw])
#define LEASE_LEFT(sw, rm)  (rm)
#endif
/* FIX 4: a fresh lease ack installs its state if the switch has none or the ack's seq is
 * newer than the switch's (a later grant), whether or not the lease is valid; otherwise it
 * only sets the lease. The doc installs exactly when the local lease is not valid. */
#ifdef DOC_INSTALL_RULE
#define TAKES_STATE(sw, sq) (lease[sw] == 0 || !hs[sw])
#else
#define TAKES_STATE(sw, sq) (!hs[sw] || NEWER(sq, sseq[sw]))
#endif
#define NOUT(sw) (((out[sw] >> 1) & 1) + ((out[sw] >> 2) & 1))
#define VALID(sw) (lease[sw] > 0 && hs[sw])
#define CAN_WRITE(sw) (nw < WRITES && NOUT(sw) < W)
#define COPY(sw, w) PACK(RQ_RENEW, sw, 0, wseq[w], w, 0)
#define CHAINED(sw, w) chain??[eval(PACK(CH_WRITE, sw, 0, wseq[w], w, 0))]
#define ACK_OF(sw, w) PACK(AK_RENEW, sw, 0, wseq[w], w, 0)
#define IN_FLIGHT(sw, w) (rq[0] == COPY(sw, w) || rq[1] == COPY(sw, w) || \
                          ak[0] == ACK_OF(sw, w) || ak[1] == ACK_OF(sw, w))

/* the agent drops the copies of writes with a seq up to sq; ghost: they count as acked */
inline drop_upto(sw, sq, ghost) {
  jx = 1;
  do
  :: jx <= MAXW ->
     if
     :: (out[sw] & BIT(jx)) && !NEWER(wseq[jx], sq) ->
        out[sw] = out[sw] & ~BIT(jx);
        if :: ghost -> MARK_ACKED(jx) :: else fi
     :: else
     fi;
     jx++
  :: else -> break
  od;
  skip
}

inline release(w) {             /* a write's output packet leaves the switch */
  CHECK_OUTPUT(w)
}

inline new_write(sw) {          /* a packet changes the flow's state */
  nw++;
  wseq[nw] = NEXT(sseq[sw]);
  SET_ANC(nw, sval[sw]);
  sseq[sw] = wseq[nw];
  sval[sw] = nw;
  out[sw] = out[sw] | BIT(nw);
#ifdef BUG_RELEASE_BEFORE_ACK
  release(nw);
#endif
  PUT(rq, COPY(sw, nw))
}

inline lease_ack(sw, in, sq, vl, rm) {  /* NEW_ACK / MIGRATE_ACK */
  if
  :: FRESH(sw, in, rm) && TAKES_STATE(sw, sq) ->
     lease[sw] = LEASE_LEFT(sw, rm);
     hs[sw] = 1; sseq[sw] = sq; sval[sw] = vl;
     drop_upto(sw, sq, false);          /* fenced-off writes are abandoned */
#ifdef DOC_PENDING_SINCE
     pend[sw] = NO_PEND;
#endif
#ifdef BUG_NO_RETRY
     asked[sw] = 0;
#endif
     CHECK_RESUME(sw);
     CHECK_MUTEX()
#ifndef DOC_INSTALL_RULE
  :: FRESH(sw, in, rm) && !TAKES_STATE(sw, sq) -> lease[sw] = LEASE_LEFT(sw, rm); CHECK_MUTEX()
#endif
  :: else                               /* stale: ignored */
  fi
}

inline switch_ack(sw, m) {      /* the switch receives one ack */
  mty = MT(m); minc = MI(m); mseq = MQ(m); mval = MV(m); mrem = MR(m);
  if
  :: mty == AK_LEASE -> lease_ack(sw, minc, mseq, mval, mrem)
  :: mty == AK_RENEW && mseq == 0 ->
     if :: hs[sw] && mrem > 0 && minc == inc[sw] -> lease[sw] = mrem; CHECK_MUTEX()
        :: else fi
  :: mty == AK_RENEW && mseq != 0 ->
     release(mval);
     drop_upto(sw, mseq, true);                                 /* cumulative */
     CHECK_ACKED()
  fi
}

inline request_lease(sw) {
#ifdef BUG_NO_RETRY
  asked[sw] = 1;                /* BUG: no LEASE_NEW again until one is answered */
#endif
#ifdef DOC_PENDING_SINCE
  if :: pend[sw] == NO_PEND -> pend[sw] = 0 :: else fi;
#endif
  PUT(rq, PACK(RQ_NEW, sw, inc[sw], 0, 0, LS))
}

#define RENEWING(sw) ((MT(rq[0]) == RQ_RENEW && MS(rq[0]) == sw && MQ(rq[0]) == 0) || \
                      (MT(rq[1]) == RQ_RENEW && MS(rq[1]) == sw && MQ(rq[1]) == 0))

#ifdef LIVENESS
/* one packet and one retransmission per switch per tick; packets only where routed */
#define PACKET_OK(sw) (route == sw && credit[sw])
#define PACKET_DONE(sw) credit[sw] = 0
#define RETX_OK(sw) rto[sw]
#define RETX_DONE(sw) rto[sw] = 0
#else
/* a bounded number of packets that send something; other reads change nothing */
#define PACKET_OK(sw) (pkts > 0)
#define PACKET_DONE(sw) pkts--
#define RETX_OK(sw) true
#define RETX_DONE(sw) skip
#endif

/* A switch. Routing may send it a packet of the flow at any time: a read is forwarded at
 * once (with a renewal when less than half the lease is left and none is in flight); a
 * write is piggybacked on LEASE_RENEW; without a valid lease it sends LEASE_NEW. It
 * receives acks, and its agent re-sends an unacknowledged write when neither the write nor
 * its ack is in flight (the RTO exceeds a round trip; late copies come from duplication). */
proctype Switch(byte me) {
end:
  do
  :: d_step { VALID(me) && lease[me] * 2 <= LS && !RENEWING(me) && ROOM(rq) && PACKET_OK(me) ->
       PACKET_DONE(me); PUT(rq, PACK(RQ_RENEW, me, inc[me], 0, 0, LS)) }
  :: d_step { VALID(me) && CAN_WRITE(me) && ROOM(rq) && PACKET_OK(me) ->
       PACKET_DONE(me); new_write(me) }
  :: d_step { !VALID(me) && MAY_ASK(me) && ROOM(rq) && PACKET_OK(me) ->
       PACKET_DONE(me); request_lease(me) }
  :: d_step { ak[0] != 0 && MS(ak[0]) == me -> xm = ak[0]; TAKE(ak, 0); switch_ack(me, xm) }
  :: d_step { ak[1] != 0 && MS(ak[1]) == me -> xm = ak[1]; TAKE(ak, 1); switch_ack(me, xm) }
  :: d_step { (out[me] & BIT(1)) && !IN_FLIGHT(me, 1) && !CHAINED(me, 1) && ROOM(rq) && RETX_OK(me) ->
       RETX_DONE(me); PUT(rq, COPY(me, 1)) }
  :: d_step { (out[me] & BIT(2)) && !IN_FLIGHT(me, 2) && !CHAINED(me, 2) && ROOM(rq) && RETX_OK(me) ->
       RETX_DONE(me); PUT(rq, COPY(me, 2)) }
  od
}

/* The head replica: takes requests in any order; grants a queued request once the lease
 * it waits for has expired (unless renewed meanwhile). */
active proctype Head() {
end:
  do
  :: d_step { rq[0] != 0 && CH_ROOM HEAD_AK_ROOM -> xm = rq[0]; TAKE(rq, 0); head_request(xm) }
  :: d_step { rq[1] != 0 && CH_ROOM HEAD_AK_ROOM -> xm = rq[1]; TAKE(rq, 1); head_request(xm) }
  :: d_step { qd[0] > 0 && own[head] != 0 && sexp == 0 && CH_ROOM ->
       grant(0, Q_INC(0), Q_REM(0)) }
  :: d_step { qd[1] > 0 && own[head] != 1 && sexp == 0 && CH_ROOM ->
       grant(1, Q_INC(1), Q_REM(1)) }
  od
}

/* The tail replica: applies the chain link's messages in order and sends the acks. With
 * one replica left it is also the head and the link is its internal queue. */
active proctype Tail() {
end:
  do
  :: d_step { nempty(chain) && ROOM(ak) -> chain?xm; tail_apply(xm) }
  od
}

/* The network: loses a request or an ack, or duplicates a request (its processing and ack
 * then happen twice); delivery order is free. */
active proctype Network() {
end:
  do
  :: d_step { faults > 0 && rq[0] != 0 -> faults--; TAKE(rq, 0) }
  :: d_step { faults > 0 && rq[1] != 0 -> faults--; TAKE(rq, 1) }
  :: d_step { faults > 0 && ak[0] != 0 -> faults--; TAKE(ak, 0) }
  :: d_step { faults > 0 && ak[1] != 0 -> faults--; TAKE(ak, 1) }
  :: d_step { faults > 0 && rq[0] != 0 && ROOM(rq) -> faults--; PUT(rq, rq[0]) }
  od
}

/* ------------------------------------------------------------ environment */
inline crash(sw) {              /* the switch crashes and restarts empty */
  lease[sw] = 0; hs[sw] = 0; out[sw] = 0; inc[sw] = 1 - inc[sw]
#ifdef BUG_NO_RETRY
  ; asked[sw] = 0
#endif
#ifdef DOC_PENDING_SINCE
  ; pend[sw] = NO_PEND
#endif
}

/* Failures and repairs: a switch crashes and restarts empty (while it is down routing
 * sends it nothing and acks to it are lost: a restarted switch ignores them, or the
 * network loses them); a replica fails and the chain is reconfigured; (liveness) routing
 * moves the flow to the other switch. */
active proctype Environment() {
end:
  do
  :: d_step { faults > 0 && crashes > 0 -> faults--; crashes--; crash(0) }
#ifdef LIVENESS
  :: d_step { faults > 0 && crashes > 0 -> faults--; crashes--; crash(1) }
#endif
  /* the head fails: requests in flight to it, its queue and its chain link are lost;
     the switches are re-pointed at the tail, which holds the replicated owner and takes
     the lease as valid for a full period (at least the replicated expiry) */
  :: d_step { faults > 0 && head != tail -> faults--; head = tail; sexp = L;
       rq[0] = 0; rq[1] = 0; qd[0] = 0; qd[1] = 0; drain_chain(); CHECK_ACKED() }
  /* the tail fails: the head becomes the tail; what its chain link held is lost */
  :: d_step { faults > 0 && head != tail -> faults--; tail = head; drain_chain(); CHECK_ACKED() }
#ifdef LIVENESS
  :: d_step { routes > 0 -> routes--; route = 1 - route }
  /* the environment may also settle: no more failures or routing changes (without this
     option weak fairness would force it to use up its budgets) */
  :: d_step { faults > 0 || routes > 0 -> faults = 0; routes = 0 }
#endif
  od
}

/* ------------------------------------------------------------------ clock */
#ifdef LIVENESS
/* eventual synchrony: a tick passes only once every packet and message is handled */
#define TICK_GUARD (rq[0] == 0 && ak[0] == 0 && len(chain) == 0)
#else
#define TICK_GUARD true
#endif

inline tick_switch(sw) {
  if :: lease[sw] > 0 -> lease[sw]-- :: else fi;
#ifdef DOC_PENDING_SINCE
  if :: pend[sw] != NO_PEND && pend[sw] < LS -> pend[sw]++ :: else fi;
#endif
#ifdef LIVENESS
  credit[sw] = 1; rto[sw] = 1;
#endif
  if :: qd[sw] > 0 && Q_REM(sw) > 0 -> qd[sw]-- :: else fi   /* the head's queue ages too */
}

/* The clock: a tick lowers every lease timer and ages every message in flight. */
active proctype Clock() {
end:
  do
  :: d_step { TICK_GUARD ->
       tick_switch(0); tick_switch(1);
       if :: sexp > 0 -> sexp-- :: else fi;
       AGE(rq, 0); AGE(rq, 1); SORT2(rq);
       AGE(ak, 0); AGE(ak, 1); SORT2(ak);
       age_chain() }
  od
}

init {
  d_step {
    head = 0; tail = 1;
    own[0] = NONE; own[1] = NONE;
    cseq[0] = SEQ0; cseq[1] = SEQ0;
    wseq[0] = SEQ0;
    SET_ANC(0, 0);
#ifdef DOC_PENDING_SINCE
    pend[0] = NO_PEND; pend[1] = NO_PEND;
#endif
  }
  atomic { run Switch(0); run Switch(1) }
}
