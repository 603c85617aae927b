"""The SLI store: per-endpoint counts per time bucket, durable in SQLite, hot in memory.

Data comes in as ``BucketCounts`` (``Aggregator.drain``, every flush interval, 10 s by
default) and is kept in tiers of coarser and coarser buckets, each for the windows it serves::

    tier     serves windows up to    rows per endpoint
    10 s     1 h                      362
    1 min    6 h                      362
    10 min   3 d                      434
    1 h      the retention (30 d)     722

The retention is the longest SLO period in use (``retention_s``); tiers beyond it are dropped.
Every flush adds its counts to the current bucket of every tier (the current rows stay hot in
memory) and writes them in one SQLite transaction (WAL): after a crash, at most the counts of
one flush interval are missing, and a restart carries on adding to the same rows.

Reading: the evaluator does not query SQLite on its tick. It tracks each SLO once, as a
``Series`` of (good, total) per bucket that the store keeps in memory, feeds on each flush, and
rebuilds from the stored history whenever the SLO is added or edited::

    spec = SeriesSpec(
        name=slo.id,                                  # tracking the same name again replaces it
        selects=endpoint_selector(service, route=..., route_regex=..., method=...),
        measure=sli_measure(kind, threshold_s),       # counts -> (good, total)
        columns=2,
        max_window_s=slo.period_s,
    )
    series = store.track(spec)                        # once, and again when the SLO changes
    ...
    good, total = series.good_total(window_s, now)    # every tick, for each of its windows

``track_many`` tracks many specs in one pass over the history (what a restart does).
``read`` and ``error_types`` do query SQLite, for the rare questions (a backtest, the top error
types of an alert or of an unhealthy endpoint).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from slo.codec import (
    CorruptRow,
    decode_counts,
    decode_error_types,
    encode_counts,
    encode_error_types,
)
from slo.errors import StoreCorrupt, StoreError, StoreUnavailable
from slo.model import (
    SERVER_SIDE,
    BucketCounts,
    Counts,
    EndpointKey,
    good_of,
    merge_error_types,
)
from slo.series import Measure, Selects, Series, SeriesSpec, Tier, coarse_tier_for, tier_for

MINUTE = 60
HOUR = 3600
DAY = 86400
DEFAULT_RETENTION_S = 30 * DAY
SCHEMA_VERSION = 1

_BASE_TIERS: tuple[tuple[int, int | None], ...] = (
    (10, HOUR),
    (MINUTE, 6 * HOUR),
    (10 * MINUTE, 3 * DAY),
    (HOUR, None),
)
_PRUNE_EVERY_S = MINUTE
FUTURE_TOLERANCE_S = 5 * MINUTE  # clocks disagree a little; a bucket beyond is a wrong clock
_IN_LIMIT = 500  # up to this many endpoints SQLite filters them (``IN``); beyond, Python does


def default_tiers(retention_s: int = DEFAULT_RETENTION_S) -> tuple[Tier, ...]:
    """10 s / 1 min / 10 min / 1 h tiers, the last one (whichever it is) spanning the
    retention, so nothing is kept longer than the longest period in use."""
    if retention_s <= 0:
        raise ValueError("retention_s must be positive")
    # Every tier exists whatever the retention, so that a file written under a short retention
    # and reopened under a longer one still has the tiers it is read from (a retention-shaped
    # tier list once made a reopened store discard every endpoint).
    return tuple(
        Tier(width, retention_s if span is None else min(span, retention_s))
        for width, span in _BASE_TIERS
    )


class SliStore(Protocol):
    """What the evaluator, the health score and the API need from the store."""

    @property
    def tiers(self) -> tuple[Tier, ...]: ...

    def write(self, batch: Sequence[BucketCounts]) -> None: ...

    def endpoints(self) -> list[EndpointKey]: ...

    def track(self, spec: SeriesSpec) -> Series: ...

    def track_many(self, specs: Sequence[SeriesSpec]) -> list[Series]: ...

    def untrack(self, name: str) -> None: ...

    def read(self, selects: Selects, window_s: float, now: float) -> Counts | None: ...

    def error_types(
        self, selects: Selects, window_s: float, now: float, limit: int = 5
    ) -> tuple[tuple[str, int], ...]: ...

    def error_types_by_endpoint(
        self, selects: Selects, window_s: float, now: float, limit: int | None = 5
    ) -> dict[EndpointKey, tuple[tuple[str, int], ...]]: ...

    def close(self) -> None: ...


def sli_measure(sli_kind: str, threshold_s: float | None = None) -> Measure:
    """The (good, total) measure of an SLI (see ``good_of``)."""
    good_of(Counts((1.0,)), sli_kind, threshold_s)  # fails now on a bad kind, not at a flush

    def measure(counts: Counts) -> tuple[int, int]:
        return good_of(counts, sli_kind, threshold_s), counts.total

    return measure


def endpoint_selector(
    service: str,
    *,
    route: str | None = None,
    route_regex: str | None = None,
    method: str | None = None,
) -> Selects:
    """The endpoints an SLO selector picks: served endpoints (never outbound calls) of one
    service, optionally one route (exact, or a regex matching the whole route) and method."""
    pattern = re.compile(route_regex) if route_regex is not None else None

    def selects(key: EndpointKey) -> bool:
        return (
            key.direction == SERVER_SIDE
            and key.service == service
            and (route is None or key.route == route)
            and (pattern is None or pattern.fullmatch(key.route) is not None)
            and (method is None or key.method == method)
        )

    return selects


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL, direction TEXT NOT NULL, method TEXT NOT NULL, route TEXT NOT NULL,
    UNIQUE (service, direction, method, route)
);
CREATE TABLE IF NOT EXISTS bounds (id INTEGER PRIMARY KEY, bounds TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS error_types (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS counts (
    tier INTEGER NOT NULL,      -- the tier's bucket width in seconds
    endpoint INTEGER NOT NULL,
    bucket INTEGER NOT NULL,    -- Unix seconds of the bucket's start
    bounds INTEGER NOT NULL,
    data BLOB NOT NULL,         -- slo.codec.encode_counts
    errors BLOB,                -- slo.codec.encode_error_types; NULL when none
    -- Time-major: a flush rewrites a few contiguous pages per tier (not one page per
    -- endpoint), and pruning is a range delete; reading one endpoint scans a time range.
    PRIMARY KEY (tier, bucket, endpoint)
) WITHOUT ROWID;
"""

_RowKey = tuple[int, int, int]  # (tier width, bucket start, endpoint id)


class SqliteSliStore:
    """``SliStore`` on one SQLite file. Thread-safe; one instance per file and process."""

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        retention_s: int = DEFAULT_RETENTION_S,
        tiers: Sequence[Tier] | None = None,
    ) -> None:
        self._path = str(path)
        self._clock = clock
        self._tiers = tuple(tiers) if tiers is not None else default_tiers(retention_s)
        if not self._tiers or any(
            a.width_s >= b.width_s or a.span_s > b.span_s
            for a, b in zip(self._tiers, self._tiers[1:], strict=False)
        ):
            raise ValueError("tiers must go from finer to coarser buckets and longer spans")
        self._lock = threading.Lock()
        self._endpoint_ids: dict[EndpointKey, int] = {}
        self._bounds_ids: dict[tuple[float, ...], int] = {}
        self._bounds_of: dict[int, tuple[float, ...]] = {}
        self._type_ids: dict[str, int] = {}
        self._type_names: dict[int, str] = {}
        self._hot: dict[_RowKey, Counts] = {}
        self._newest: dict[int, int] = {}  # tier width -> newest bucket start in the file
        self._series: dict[str, Series] = {}
        self._series_of: dict[int, list[Series]] = {}  # endpoint id -> series that select it
        self._last_prune: dict[int, float] = {}
        self.dropped = 0  # buckets older than every tier keeps, or too far in the future
        try:
            self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"{self._path}: cannot open the SLI store: {exc}") from exc
        try:
            self._open()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreUnavailable(f"{self._path}: cannot open the SLI store: {exc}") from exc
        except StoreError:
            self._db.close()
            raise

    # --- opening ------------------------------------------------------------------------------

    def _open(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable against a process crash
        db.executescript(_SCHEMA)
        found = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if found is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif found[0] != str(SCHEMA_VERSION):
            raise StoreCorrupt(
                f"{self._path}: SLI store schema version {found[0]}, this bytewatch reads "
                f"version {SCHEMA_VERSION}"
            )
        widths = [t.width_s for t in self._tiers]
        marks = ",".join("?" * len(widths))
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"DELETE FROM counts WHERE tier NOT IN ({marks})", widths)  # noqa: S608
        now = self._clock()
        for tier in self._tiers:
            db.execute(
                "DELETE FROM counts WHERE tier=? AND bucket<?",
                (tier.width_s, self._oldest(tier, now)),
            )
        # An endpoint goes when no tier keeps any of its rows.
        db.execute("DELETE FROM endpoints WHERE id NOT IN (SELECT DISTINCT endpoint FROM counts)")
        db.execute("COMMIT")
        self._load_ids()
        for tier in self._tiers:
            row = db.execute("SELECT MAX(bucket) FROM counts WHERE tier=?", (tier.width_s,))
            newest = row.fetchone()[0]
            if newest is not None:
                self._newest[tier.width_s] = int(newest)

    def _load_ids(self) -> None:
        """The id maps of endpoints, bounds and error types, as the file has them."""
        db = self._db
        self._endpoint_ids.clear()
        self._bounds_ids.clear()
        self._bounds_of.clear()
        self._type_ids.clear()
        self._type_names.clear()
        for eid, service, direction, method, route in db.execute("SELECT * FROM endpoints"):
            self._endpoint_ids[EndpointKey(service, direction, method, route)] = eid
        for bid, text in db.execute("SELECT id, bounds FROM bounds"):
            bounds = tuple(float(b) for b in json.loads(text))
            self._bounds_ids[bounds] = bid
            self._bounds_of[bid] = bounds
        for tid, name in db.execute("SELECT id, name FROM error_types"):
            self._type_ids[name] = tid
            self._type_names[tid] = name
        known = set(self._endpoint_ids.values())
        self._series_of = {eid: s for eid, s in self._series_of.items() if eid in known}

    @staticmethod
    def _oldest(tier: Tier, now: float) -> int:
        """The oldest bucket start a tier keeps at ``now``."""
        return (int(now) // tier.width_s - tier.slots + 1) * tier.width_s

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ------------------------------------------------------------------------------

    def write(self, batch: Sequence[BucketCounts]) -> None:
        """Add one flush's counts, durably: when this returns they survive a crash.

        All or nothing: on ``StoreError`` nothing changed, and the same batch may be written
        again (with the next one)."""
        if not batch:
            return
        with self._lock:
            try:
                self._write(batch)
            except sqlite3.Error as exc:
                try:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    self._load_ids()  # ids handed out in the failed transaction are void
                except sqlite3.Error:
                    pass  # the database is gone: the next call reports it again
                raise StoreUnavailable(f"{self._path}: cannot write counts: {exc}") from exc

    def _write(self, batch: Sequence[BucketCounts]) -> None:
        now = self._clock()
        oldest = {t.width_s: self._oldest(t, now) for t in self._tiers}
        rows: dict[_RowKey, Counts] = {}
        fed: list[tuple[int, BucketCounts]] = []
        self._db.execute("BEGIN IMMEDIATE")
        for item in batch:
            if item.start_s > now + FUTURE_TOLERANCE_S:
                # One wrong timestamp must not move every ring past the real data.
                self.dropped += 1
                continue
            eid = self._endpoint_id(item.key)
            kept = False
            for tier in self._tiers:
                width = tier.width_s
                start = item.start_s - item.start_s % width
                if start < oldest[width]:
                    continue
                kept = True
                ident = (width, start, eid)
                current = rows.get(ident)
                if current is None:
                    current = self._hot.get(ident)
                if current is None and start <= self._newest.get(width, -1):
                    current = self._load(ident)
                rows[ident] = item.counts if current is None else current + item.counts
            if kept:
                fed.append((eid, item))
            else:
                self.dropped += 1
        self._db.executemany(
            "INSERT OR REPLACE INTO counts VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    width,
                    eid,
                    start,
                    self._bounds_id(counts.bounds),
                    encode_counts(counts),
                    encode_error_types(counts.error_types, self._type_id),
                )
                for (width, start, eid), counts in rows.items()
            ],
        )
        self._prune(now)
        self._db.execute("COMMIT")
        # Committed: now memory may follow.
        for width, start, _ in rows:
            if start > self._newest.get(width, -1):
                self._newest[width] = start
        self._hot.update(rows)
        self._evict_hot()
        for eid, item in fed:
            for series in self._series_of.get(eid, ()):
                series.add(item.start_s, series.spec.measure(item.counts))

    def _load(self, ident: _RowKey) -> Counts | None:
        row = self._db.execute(
            "SELECT bounds, data, errors FROM counts WHERE tier=? AND bucket=? AND endpoint=?",
            ident,
        ).fetchone()
        return None if row is None else self._decode(row[0], row[1], row[2])

    def _evict_hot(self) -> None:
        """Keep only each tier's newest two buckets: older ones rarely change again."""
        keep = {w: newest - w for w, newest in self._newest.items()}
        stale = [ident for ident in self._hot if ident[1] < keep[ident[0]]]
        for ident in stale:
            del self._hot[ident]

    def _prune(self, now: float) -> None:
        for tier in self._tiers:
            last = self._last_prune.get(tier.width_s)
            if last is not None and now - last < max(tier.width_s, _PRUNE_EVERY_S):
                continue
            self._last_prune[tier.width_s] = now
            self._db.execute(
                "DELETE FROM counts WHERE tier=? AND bucket<?",
                (tier.width_s, self._oldest(tier, now)),
            )

    def _endpoint_id(self, key: EndpointKey) -> int:
        eid = self._endpoint_ids.get(key)
        if eid is None:
            cursor = self._db.execute(
                "INSERT INTO endpoints (service, direction, method, route) VALUES (?, ?, ?, ?)",
                (key.service, key.direction, key.method, key.route),
            )
            eid = self._endpoint_ids[key] = int(cursor.lastrowid or 0)
            self._series_of[eid] = [s for s in self._series.values() if s.spec.selects(key)]
        return eid

    def _bounds_id(self, bounds: tuple[float, ...]) -> int:
        bid = self._bounds_ids.get(bounds)
        if bid is None:
            cursor = self._db.execute(
                "INSERT INTO bounds (bounds) VALUES (?)", (json.dumps(list(bounds)),)
            )
            bid = self._bounds_ids[bounds] = int(cursor.lastrowid or 0)
            self._bounds_of[bid] = bounds
        return bid

    def _type_id(self, name: str) -> int:
        tid = self._type_ids.get(name)
        if tid is None:
            cursor = self._db.execute("INSERT INTO error_types (name) VALUES (?)", (name,))
            tid = self._type_ids[name] = int(cursor.lastrowid or 0)
            self._type_names[tid] = name
        return tid

    def _decode(self, bid: int, data: bytes, errors: bytes | None) -> Counts:
        try:
            bounds = self._bounds_of[bid]
            counts = decode_counts(data, bounds)
            if errors is None:
                return counts
            types = decode_error_types(errors, self._type_names.__getitem__)
        except (CorruptRow, KeyError) as exc:
            raise StoreCorrupt(f"{self._path}: a stored row does not decode: {exc}") from exc
        return Counts(
            counts.bounds,
            counts.total,
            counts.server_errors,
            counts.business_errors,
            counts.latency_le,
            counts.clean_le,
            types,
        )

    # --- reading ------------------------------------------------------------------------------

    def endpoints(self) -> list[EndpointKey]:
        """Every endpoint with counts within the retention (as of the last open or write)."""
        with self._lock:
            return sorted(self._endpoint_ids)

    def track(self, spec: SeriesSpec) -> Series:
        return self.track_many([spec])[0]

    def track_many(self, specs: Sequence[SeriesSpec]) -> list[Series]:
        """Keep window sums of each spec from now on, starting from the stored history.

        One pass over the history serves every spec; a spec whose name is tracked already
        replaces it (an edited SLO is evaluated again over the whole history)."""
        with self._lock:
            try:
                return self._track_many(specs)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"{self._path}: cannot read history: {exc}") from exc

    def _track_many(self, specs: Sequence[SeriesSpec]) -> list[Series]:
        made = [Series(spec, self._tiers, self._lock) for spec in specs]
        for series in made:
            self._forget(series.name)
        # users[tier width][endpoint id] -> (series, index of that tier in the series)
        users: dict[int, dict[int, list[tuple[Series, int]]]] = {}
        for series in made:
            eids = [eid for key, eid in self._endpoint_ids.items() if series.spec.selects(key)]
            for eid in eids:
                self._series_of.setdefault(eid, []).append(series)
            for index, tier in enumerate(series.tiers):
                per_endpoint = users.setdefault(tier.width_s, {})
                for eid in eids:
                    per_endpoint.setdefault(eid, []).append((series, index))
            self._series[series.name] = series
        now = self._clock()
        for tier in self._tiers:
            listeners = users.get(tier.width_s)
            if not listeners:
                continue
            for eid, bucket, bid, data in self._history(tier, now, listeners):
                counts = self._decode(bid, data, None)
                for series, index in listeners[eid]:
                    series.add_to_tier(index, bucket, series.spec.measure(counts))
        return made

    def _history(
        self, tier: Tier, now: float, endpoints: Iterable[int]
    ) -> Iterable[tuple[int, int, int, bytes]]:
        """The tier's kept rows of some endpoints: one scan of its time range."""
        wanted = set(endpoints)
        query = "SELECT endpoint, bucket, bounds, data FROM counts WHERE tier=? AND bucket>=?"
        args: list[int] = [tier.width_s, self._oldest(tier, now)]
        if len(wanted) <= _IN_LIMIT:
            query += f" AND endpoint IN ({','.join('?' * len(wanted))})"
            args += wanted
            yield from self._db.execute(query, args)
            return
        for row in self._db.execute(query, args):
            if row[0] in wanted:
                yield row

    def untrack(self, name: str) -> None:
        with self._lock:
            self._forget(name)

    def _forget(self, name: str) -> None:
        old = self._series.pop(name, None)
        if old is None:
            return
        for listeners in self._series_of.values():
            if old in listeners:
                listeners.remove(old)

    def read(self, selects: Selects, window_s: float, now: float) -> Counts | None:
        """Exact counts (with error types) of the selected endpoints over a window, from the
        file; None when nothing was stored for them in it."""
        total: Counts | None = None
        for _, bid, data, errors in self._window_rows(selects, window_s, now):
            counts = self._decode(bid, data, errors)
            total = counts if total is None else total + counts
        return total

    def error_types(
        self, selects: Selects, window_s: float, now: float, limit: int = 5
    ) -> tuple[tuple[str, int], ...]:
        """The most frequent business error types of the selected endpoints over a window."""
        found = self.error_types_by_endpoint(selects, window_s, now, limit=None)
        return merge_error_types(*found.values(), limit=limit)

    def error_types_by_endpoint(
        self, selects: Selects, window_s: float, now: float, limit: int | None = 5
    ) -> dict[EndpointKey, tuple[tuple[str, int], ...]]:
        """The most frequent business error types of each selected endpoint over a window
        (endpoints without any are left out): one scan, however many endpoints."""
        groups: dict[int, list[tuple[tuple[str, int], ...]]] = {}
        # A top list need not be exact to the bucket: a tier with ~30 buckets in the window
        # answers (a 1 h window reads 60 one-minute rows per endpoint, not 360).
        rows = self._window_rows(
            selects, window_s, now, errors_only=True, tier=coarse_tier_for(self._tiers, window_s)
        )
        for eid, _, _, blob in rows:
            try:
                types = decode_error_types(blob, self._type_names.__getitem__)
            except (CorruptRow, KeyError) as exc:
                raise StoreCorrupt(f"{self._path}: a stored row does not decode: {exc}") from exc
            groups.setdefault(eid, []).append(types)
        with self._lock:
            keys = {eid: key for key, eid in self._endpoint_ids.items() if eid in groups}
        return {keys[eid]: merge_error_types(*found, limit=limit) for eid, found in groups.items()}

    def _window_rows(
        self,
        selects: Selects,
        window_s: float,
        now: float,
        *,
        errors_only: bool = False,
        tier: Tier | None = None,
    ) -> list[tuple[int, int, bytes, bytes | None]]:
        """(endpoint, bounds, data, errors) of the selected endpoints' rows in a window."""
        tier = tier or tier_for(self._tiers, window_s)
        first = int((now - window_s) // tier.width_s) * tier.width_s
        last = int(now // tier.width_s) * tier.width_s
        query = (
            "SELECT endpoint, bounds, data, errors FROM counts "
            "WHERE tier=? AND bucket>=? AND bucket<=?"
        )
        if errors_only:
            query += " AND errors IS NOT NULL"
        with self._lock:
            wanted = {eid for key, eid in self._endpoint_ids.items() if selects(key)}
            if not wanted:
                return []
            args: list[int] = [tier.width_s, first, last]
            if len(wanted) <= _IN_LIMIT:
                query += f" AND endpoint IN ({','.join('?' * len(wanted))})"
                args += wanted
            try:
                rows = self._db.execute(query, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"{self._path}: cannot read counts: {exc}") from exc
        return [row for row in rows if row[0] in wanted]
