"""Counters of one store process and the JSON stats dump built from them."""
from __future__ import annotations

import json
import os
from pathlib import Path

from testbed.redplane.protocol import ACK_TYPES, REQUEST_TYPES

# Every counter is always present in the dump (0 when nothing happened), so loaders can rely on
# the keys. Times are in milliseconds.
COUNTER_NAMES = (
    "datagrams",            # UDP datagrams received on the store port
    "malformed",            # dropped: short, bad type, wrong layout length
    "misrouted",            # dropped: key does not hash to this shard
    "not_head",             # dropped: request reached a replica that is not the head
    "grants",               # leases granted (NEW_ACK / MIGRATE_ACK planned), queued ones included
    "fences",               # lease grants applied from the predecessor (seq advanced by F)
    "queued",               # LEASE_NEW requests queued behind another switch's valid lease
    "queue_replaced",       # queued packets dropped because a newer request replaced them
    "queued_grants",        # grants given to a queued request when the lease expired
    "queue_wait_total_ms",  # sum of waiting times of queued grants
    "queue_wait_max_ms",    # longest waiting time of a queued grant
    "renewals",             # lease renewals accepted (LEASE_RENEW seq 0)
    "writes",               # writes accepted from the owner (LEASE_RENEW seq != 0)
    "commits",              # writes that changed the committed value (at this replica)
    "duplicates",           # writes with seq == committed (no-op, re-acked by the tail)
    "old_writes",           # writes older than committed (no-op, not acked)
    "refusals",             # renewals / writes from a switch that is not the owner
    "mirrored",             # reverse mappings committed with a write (--mirror-values)
    "snapshots_stored",     # SNAPSHOT requests stored
    "snapshots_old",        # SNAPSHOT requests older than the stored epoch (not stored)
    "acks_total",           # acks sent (by type under acks_sent)
    "acks_withheld",        # write acks not sent: the write's seq is not the tail's committed seq
    "send_errors",          # acks the OS refused to send
    "replication_sent",     # update records sent to the successor
    "replication_received", # update records received from the predecessor
    "replication_dropped",  # updates not sent: successor configured but not connected
    "replication_errors",   # broken or bad replication connections / records
    "replication_refused",  # predecessor connections refused (head, or not the --prev host)
    "replication_connects", # successful connections to the successor
    "sync_sent_keys",       # keys sent in full-state syncs to a new successor
    "sync_received_keys",   # keys merged from a predecessor's full-state sync
    "syncs_completed",      # full-state syncs confirmed by the successor (sender side)
)


class Counters(dict):
    """A dict of every counter in `COUNTER_NAMES` (starting at 0) plus per-type request and
    ack counts."""

    def __init__(self) -> None:
        super().__init__({name: 0 for name in COUNTER_NAMES})
        self.requests = {name: 0 for name in REQUEST_TYPES.values()}
        self.acks_sent = {name: 0 for name in ACK_TYPES.values()}

    def add(self, name: str, amount: float = 1) -> None:
        """Increment counter `name` (which must be one of `COUNTER_NAMES`)."""
        self[name] += amount

    def maximum(self, name: str, value: float) -> None:
        """Raise counter `name` to `value` if it is larger."""
        self[name] = max(self[name], value)

    def as_dict(self) -> dict:
        """Plain JSON-ready dict: the flat counters plus ``requests`` and ``acks_sent``."""
        return dict(self, requests=dict(self.requests), acks_sent=dict(self.acks_sent))


def write_stats_file(path: str | os.PathLike, stats: dict) -> None:
    """Write `stats` as JSON to `path` atomically (temporary file, then rename)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, target)
