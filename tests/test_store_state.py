"""The store's pure per-key state machine, driven with explicit times (a fake clock)."""
import pytest

from testbed.redplane import protocol
from testbed.redplane.protocol import LEASE_NEW, LEASE_RENEW, SNAPSHOT
from testbed.store import StoreError
from testbed.store.chain import encode_update, decode_record, update_from_record
from testbed.store.state import AckKind, KeyState, Request, ShardState, Update, Verdict

LEASE = 1.0
KEY = 0x0A0000010050
S1, S2, S3 = "10.0.1.1", "10.0.1.2", "10.0.1.3"
F = protocol.SEQ_FENCE


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def shard():
    return ShardState(LEASE)


def new(switch, inner=b"pkt", key=KEY, ts=0):
    return Request(LEASE_NEW, 0, key, 0, switch, inner, ts)


def renew(switch, timestamp=0, key=KEY):
    return Request(LEASE_RENEW, 0, key, 0, switch, b"", timestamp)


def write(switch, seq, value, key=KEY, inner=b"out", ts=0):
    return Request(LEASE_RENEW, seq, key, value, switch, inner, ts)


def written_at(shard, committed, value=0, key=KEY):
    """Give `key` a committed write with seq `committed` (as a replica would receive it)."""
    shard.apply(Update(key, KeyState(value=value, committed=committed, writer=S3, written=True)))


def acks(shard, outcome):
    """The acks a single-replica chain (head = tail) sends for an outcome."""
    return [shard.ack_for(update) for update in outcome.updates]


def grant(shard, clock, switch):
    outcome = shard.handle(new(switch), clock.now)
    assert outcome.verdict is Verdict.GRANTED
    return outcome


# --- leases --------------------------------------------------------------------------------------
def test_first_lease_new_is_granted_with_new_ack_and_the_packet(shard, clock):
    outcome = shard.handle(new(S1, b"first", ts=0xFFFFFFF0), clock.now)
    assert outcome.verdict is Verdict.GRANTED and outcome.wake_at is None
    [ack] = acks(shard, outcome)
    assert (ack.type, ack.seq, ack.value, ack.inner, ack.switch, ack.ts) == (
        protocol.NEW_ACK, F, 0, b"first", S1, 0xFFFFFFF0)
    state = shard.get(KEY)
    assert state.owner == S1 and state.expiry == clock.now + LEASE
    assert (state.committed, state.written) == (F, False)


def test_new_ack_until_written_however_often_granted(shard, clock):
    """NEW vs MIGRATE follows the `written` flag, not the seq (which every grant moves)."""
    seqs = []
    for switch in (S1, S1, S2):
        clock.advance(LEASE)
        [ack] = acks(shard, grant(shard, clock, switch))
        assert ack.type == protocol.NEW_ACK
        seqs.append(ack.seq)
    assert seqs == [F, 2 * F, 3 * F]
    shard.handle(write(S2, 3 * F + 1, 5), clock.now)
    clock.advance(LEASE)
    [ack] = acks(shard, grant(shard, clock, S1))
    assert (ack.type, ack.seq, ack.value) == (protocol.MIGRATE_ACK, 4 * F + 1, 5)


def test_every_grant_advances_the_committed_seq_by_f(shard, clock):
    written_at(shard, 61000, value=9)
    [ack] = acks(shard, grant(shard, clock, S1))
    assert (ack.seq, shard.get(KEY).committed, shard.get(KEY).value) == (61000 + F, 61000 + F, 9)
    clock.advance(LEASE)
    [ack] = acks(shard, grant(shard, clock, S2))
    assert ack.seq == protocol.seq_advance(61000 + F, F) == 61000 + 2 * F - 65535  # wrapped, 0 skipped
    assert shard.get(KEY).value == 9 and shard.counters["grants"] == 2


def test_grant_fences_off_the_previous_holders_writes(shard, clock):
    """FIX 2: S1's write sent before S2's grant, and re-sent once S1 is the owner again, is
    older than the committed seq: not committed and not acked."""
    grant(shard, clock, S1)
    shard.handle(write(S1, F + 1, 10), clock.now)
    late = write(S1, F + 2, 20, inner=b"late")         # in flight while the lease moves
    clock.advance(LEASE)
    grant(shard, clock, S2)
    assert shard.handle(late, clock.now).verdict is Verdict.REFUSED
    s2_seq = shard.get(KEY).committed
    assert s2_seq == 2 * F + 1
    assert shard.handle(write(S2, s2_seq + 1, 30), clock.now).verdict is Verdict.COMMITTED
    clock.advance(LEASE)
    grant(shard, clock, S1)                             # S1 is the owner again
    outcome = shard.handle(late, clock.now)            # its agent re-sends the old write
    assert outcome.verdict is Verdict.OLD_WRITE and acks(shard, outcome) == [None]
    state = shard.get(KEY)
    assert (state.value, state.committed) == (30, 3 * F + 2)


def test_owner_asking_again_is_regranted(shard, clock):
    grant(shard, clock, S1)
    clock.advance(0.5)
    grant(shard, clock, S1)
    assert shard.get(KEY).expiry == clock.now + LEASE


def test_expired_lease_goes_to_new_switch_with_migrate(shard, clock):
    grant(shard, clock, S1)
    shard.handle(write(S1, F + 1, 4242), clock.now)
    clock.advance(LEASE)  # expiry is exclusive: the lease is over now
    outcome = grant(shard, clock, S2)
    [ack] = acks(shard, outcome)
    assert (ack.type, ack.seq, ack.value, ack.switch) == (protocol.MIGRATE_ACK, 2 * F + 1, 4242, S2)


def test_contested_lease_is_queued_and_granted_at_expiry(shard, clock):
    grant(shard, clock, S1)
    expiry = shard.get(KEY).expiry
    clock.advance(0.25)
    outcome = shard.handle(new(S2, b"waiting"), clock.now)
    assert outcome.verdict is Verdict.QUEUED and outcome.updates == []
    assert outcome.wake_at == expiry and shard.waiting(KEY) == [S2]
    early = shard.on_timer(KEY, expiry - 0.125)
    assert early.verdict is Verdict.NOTHING and early.wake_at == expiry
    clock.now = expiry
    granted = shard.on_timer(KEY, clock.now)
    [ack] = acks(shard, granted)
    assert (ack.type, ack.switch, ack.inner, ack.seq) == (protocol.NEW_ACK, S2, b"waiting", 2 * F)
    assert granted.wake_at is None and shard.get(KEY).owner == S2
    assert shard.counters["queued_grants"] == 1
    assert shard.counters["queue_wait_total_ms"] == pytest.approx(750.0)


def test_renewal_by_owner_postpones_a_queued_grant(shard, clock):
    grant(shard, clock, S1)
    shard.handle(new(S2), clock.advance(0.25))
    renewal = shard.handle(renew(S1, timestamp=777), clock.advance(0.5))
    assert renewal.verdict is Verdict.RENEWED
    assert renewal.wake_at == clock.now + LEASE
    [ack] = acks(shard, renewal)
    assert (ack.type, ack.seq, ack.ts, ack.value, ack.inner) == (protocol.RENEW_ACK, 0, 777, 0, b"")
    assert shard.on_timer(KEY, clock.advance(0.25)).verdict is Verdict.NOTHING
    granted = shard.on_timer(KEY, clock.advance(0.75))
    assert granted.verdict is Verdict.GRANTED and shard.get(KEY).owner == S2
    assert shard.counters["queue_wait_max_ms"] == pytest.approx(1500.0)


def test_newer_queued_request_replaces_older_and_keeps_waiting_time(shard, clock):
    grant(shard, clock, S1)
    shard.handle(new(S2, b"old"), clock.advance(0.25))
    shard.handle(new(S2, b"new"), clock.advance(0.25))
    assert shard.counters["queue_replaced"] == 1 and shard.waiting(KEY) == [S2]
    [ack] = acks(shard, shard.on_timer(KEY, clock.advance(0.5)))
    assert ack.inner == b"new"
    assert shard.counters["queue_wait_total_ms"] == pytest.approx(750.0)


def test_waiters_are_served_first_come_first(shard, clock):
    grant(shard, clock, S1)
    shard.handle(new(S2), clock.now)
    shard.handle(new(S3), clock.now)
    assert shard.on_timer(KEY, clock.advance(LEASE)).updates[0].state.owner == S2
    assert shard.waiting(KEY) == [S3]
    assert shard.on_timer(KEY, clock.advance(LEASE)).updates[0].state.owner == S3


def test_expired_lease_goes_to_the_waiter_before_a_late_request(shard, clock):
    grant(shard, clock, S1)
    shard.handle(new(S2), clock.now)
    # the timer has not fired yet when S3's request arrives after the expiry
    outcome = shard.handle(new(S3), clock.advance(LEASE + 0.01))
    assert outcome.verdict is Verdict.QUEUED
    assert [u.state.owner for u in outcome.updates] == [S2]
    # the old owner's renewal after expiry is refused: the lease moved to S2
    assert shard.handle(renew(S1), clock.now).verdict is Verdict.REFUSED


def test_waiter_asking_again_after_expiry_gets_both_packets(shard, clock):
    grant(shard, clock, S1)
    shard.handle(new(S2, b"queued"), clock.now)
    # S2 asks again after the lease expired, before the timer fired: its queued request is
    # granted first, then the new one (from the owner now) is granted too
    outcome = shard.handle(new(S2, b"again"), clock.advance(LEASE))
    assert outcome.verdict is Verdict.GRANTED
    assert [a.inner for a in acks(shard, outcome)] == [b"queued", b"again"]
    assert shard.waiting(KEY) == [] and outcome.wake_at is None


def test_dropping_waiters_counts_them(shard, clock):
    grant(shard, clock, S1)
    shard.handle(new(S2), clock.now)
    shard.handle(new(S3), clock.now)
    assert shard.drop_waiters() == 2 and shard.waiting_count() == 0


def test_owner_lease_new_with_itself_queued_is_a_grant(shard, clock):
    grant(shard, clock, S1)
    shard.handle(new(S2), clock.now)
    shard.on_timer(KEY, clock.advance(LEASE))  # S2 owns it now
    outcome = shard.handle(new(S2, b"again"), clock.now)
    assert outcome.verdict is Verdict.GRANTED and shard.waiting(KEY) == []


# --- writes --------------------------------------------------------------------------------------
def test_write_from_owner_commits_and_acks_with_its_packet(shard, clock):
    grant(shard, clock, S1)
    outcome = shard.handle(write(S1, F + 1, 99, inner=b"output", ts=1234), clock.advance(0.5))
    assert outcome.verdict is Verdict.COMMITTED
    [ack] = acks(shard, outcome)
    assert (ack.type, ack.seq, ack.value, ack.inner, ack.ts) == (
        protocol.RENEW_ACK, F + 1, 99, b"output", 1234)
    state = shard.get(KEY)
    assert (state.value, state.committed, state.expiry, state.written) == (
        99, F + 1, clock.now + LEASE, True)


def test_duplicate_is_reacked_but_an_older_write_is_not(shard, clock):
    """FIX 3: the tail acks a write only if its seq is the committed one; the older write is
    covered by the cumulative ack of the newer (or was fenced off and never committed)."""
    grant(shard, clock, S1)
    shard.handle(write(S1, F + 1, 10), clock.now)
    shard.handle(write(S1, F + 2, 20), clock.now)
    before = shard.get(KEY)
    duplicate = shard.handle(write(S1, F + 2, 20, inner=b"dup"), clock.advance(0.1))
    old = shard.handle(write(S1, F + 1, 10, inner=b"old"), clock.now)
    assert (duplicate.verdict, old.verdict) == (Verdict.DUPLICATE, Verdict.OLD_WRITE)
    assert shard.get(KEY) == before
    [dup_ack] = acks(shard, duplicate)
    assert (dup_ack.seq, dup_ack.value, dup_ack.inner) == (F + 2, 20, b"dup")
    assert acks(shard, old) == [None] and shard.counters["acks_withheld"] == 1
    assert len(old.updates) == 1              # the no-op still goes down the chain
    assert (shard.counters["duplicates"], shard.counters["old_writes"]) == (1, 1)


def test_tail_withholds_write_ack_until_it_has_the_write(clock):
    head = ShardState(LEASE)
    head.handle(new(S1), clock.now)
    update = head.handle(write(S1, F + 5, 50), clock.now).updates[0]
    tail = ShardState(LEASE)
    lagging = Update(KEY, KeyState(value=40, committed=F + 4), update.ack)
    tail.apply(lagging)
    assert tail.ack_for(lagging) is None and tail.counters["acks_withheld"] == 1
    tail.apply(update)
    ack = tail.ack_for(update)
    assert (ack.type, ack.seq, ack.value) == (protocol.RENEW_ACK, F + 5, 50)
    ahead = Update(KEY, KeyState(value=60, committed=F + 6), update.ack)
    tail.apply(ahead)
    assert tail.ack_for(ahead) is None        # the tail is past it: no re-ack (FIX 3)


def test_refusals_from_non_owner_while_lease_valid(shard, clock):
    grant(shard, clock, S1)
    assert shard.handle(renew(S2), clock.now).verdict is Verdict.REFUSED
    assert shard.handle(write(S2, 1, 5), clock.now).verdict is Verdict.REFUSED
    assert shard.counters["refusals"] == 2 and shard.get(KEY).committed == F


def test_write_from_expired_owner_not_taken_over_regrants(shard, clock):
    grant(shard, clock, S1)
    outcome = shard.handle(write(S1, F + 1, 7), clock.advance(LEASE + 5))
    assert outcome.verdict is Verdict.COMMITTED
    assert shard.get(KEY).lease_valid(clock.now) and shard.get(KEY).owner == S1


def test_write_from_a_switch_that_never_held_the_lease_is_refused(shard, clock):
    assert shard.handle(write(S1, 1, 7), clock.now).verdict is Verdict.REFUSED
    grant(shard, clock, S1)
    assert shard.handle(write(S2, 1, 7), clock.advance(LEASE + 5)).verdict is Verdict.REFUSED


def test_sequence_numbers_wrap_from_65535_to_1(shard, clock):
    written_at(shard, 65530 - F)
    grant(shard, clock, S1)
    assert shard.get(KEY).committed == 65530
    assert shard.handle(write(S1, 65534, 1), clock.now).verdict is Verdict.COMMITTED
    assert shard.handle(write(S1, 65535, 2), clock.now).verdict is Verdict.COMMITTED
    assert shard.handle(write(S1, 1, 3), clock.now).verdict is Verdict.COMMITTED
    assert shard.handle(write(S1, 65535, 2), clock.now).verdict is Verdict.OLD_WRITE
    assert (shard.get(KEY).committed, shard.get(KEY).value) == (1, 3)
    # the old write is not acked again: the ack of seq 1 covered it
    assert acks(shard, shard.handle(write(S1, 65535, 2), clock.now)) == [None]


def test_migrate_carries_value_and_seq_to_new_owner(shard, clock):
    written_at(shard, 65535 - F)
    grant(shard, clock, S1)
    shard.handle(write(S1, 1, 0xABC), clock.now)
    shard.handle(new(S2, b"p"), clock.advance(0.5))
    [ack] = acks(shard, shard.on_timer(KEY, clock.advance(0.5)))
    assert (ack.type, ack.seq, ack.value, ack.inner) == (protocol.MIGRATE_ACK, 1 + F, 0xABC, b"p")
    assert shard.handle(write(S2, 2 + F, 0xDEF), clock.now).verdict is Verdict.COMMITTED


# --- snapshots -----------------------------------------------------------------------------------
def test_snapshots_keep_newest_epoch_per_writer(shard, clock):
    snap = lambda switch, epoch, value: Request(SNAPSHOT, epoch, 3, value, switch)
    stored = shard.handle(snap(S1, 2, 20), clock.now)
    assert stored.verdict is Verdict.SNAPSHOT_STORED
    [ack] = acks(shard, stored)
    assert (ack.type, ack.seq, ack.inner) == (protocol.SNAPSHOT_ACK, 2, b"")
    assert shard.handle(snap(S1, 1, 10), clock.now).verdict is Verdict.SNAPSHOT_OLD
    assert shard.handle(snap(S2, 1, 11), clock.now).verdict is Verdict.SNAPSHOT_STORED
    assert (shard.get(3).value, shard.get(3).committed) == (11, 1)


def test_non_request_type_is_an_error(shard, clock):
    with pytest.raises(StoreError, match="request type 7"):
        shard.handle(Request(7, 0, KEY, 0, S1), clock.now)


# --- replicas -------------------------------------------------------------------------------------
def test_merge_keeps_newer_write_and_takes_predecessor_lease():
    replica = ShardState(LEASE)
    replica.apply(Update(1, KeyState(value=5, committed=5, owner=S1, expiry=10.0, written=True)))
    merged = replica.merge(1, KeyState(value=4, committed=4, owner=S2, expiry=20.0))
    assert (merged.value, merged.committed, merged.owner, merged.expiry) == (5, 5, S2, 20.0)
    assert merged.written
    merged = replica.merge(1, KeyState(value=6, committed=6, owner=S1, expiry=30.0))
    assert (merged.value, merged.committed, merged.owner) == (6, 6, S1)
    assert replica.merge(2, KeyState(value=1, committed=1)).committed == 1


def test_update_record_roundtrip_keeps_lease_time_left():
    update = Update(KEY, KeyState(3, 65535, S1, expiry=100.25, writer=S1, written=True))
    record = decode_record(encode_update(update, now=100.0))
    again = update_from_record(record, now=500.0)
    assert again.state.expiry == pytest.approx(500.25)
    assert (again.state.value, again.state.committed, again.state.owner) == (3, 65535, S1)
    assert again.state.written is True


def test_update_record_roundtrip_keeps_ack_plan(shard, clock):
    grant(shard, clock, S1)
    update = shard.handle(write(S1, F + 9, 90, inner=b"\x45\x00", ts=77), clock.now).updates[0]
    again = update_from_record(decode_record(encode_update(update, clock.now)), clock.now)
    assert again.ack == update.ack and again.ack.kind is AckKind.WRITE
