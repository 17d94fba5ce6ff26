"""The delivered signals against the independent oracle: nothing missing, nothing extra.

The expected set is :func:`tests.oracle.expected_signals` over the raw events the scenario
published (never the worker's own output), with the rules taken from the worker's settings and
``now`` the clock's end (event clock: the final watermark; wall clock: the moment of the
check). Three classes of difference are inherent and allowed, each checked rather than assumed
(README, "Reliability"):

* **late**: the user has an event that arrived later than the allowed lateness
  (:meth:`System.late_events`: behind the newest event time its partition had seen by more
  than the lateness, or behind the other partitions' if its partition resumed after the idle
  timeout: :mod:`tests.faults.arrival`), and the difference is a deadline between that
  event's time and where the clock could have been when it arrived (the deadline fired, or
  its silence began, before the event was read), or the ``reactivated`` signal ending such a
  deadline's silence. On the event clock that deadline may have fired older than
  ``ENGAGEMENT_SIGNAL_MAX_AGE``, so suppressed: neither delivered nor expected, it is no
  difference, and the return is checked against the dormant deadline its silence implies.
* **backlog** (wall clock): a deadline signal that fired before an older event of the same
  user, waiting in a backlog past the deadline, was folded, and the ``reactivated`` signal
  that event then produced. Its proof is in the delivered signals themselves: a
  ``reactivated`` signal of the same user whose event time lies before the deadline and that
  was processed after it.
* **stale** (missing only): a signal ``ENGAGEMENT_SIGNAL_MAX_AGE`` keeps back because its
  trigger (a deadline, or the returning event) was older than the max age whenever it could be
  decided: on the wall clock, older than the max age before the scenario started; on the event
  clock, a return read late whose partition's clock was by then more than the max age past it.

Anything else missing or extra fails the scenario.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.records import Signal
from streams.settings import Settings
from tests.faults.harness import Late
from tests.oracle import RawEvent, SignalRules, expected_signals, signal_id

DAY_S = 86_400.0
RISK_TOLERANCE_MS = 1  # T* is computed two ways in floating point (engine and oracle)
TIMER_MS = 100  # the deadline index fires a deadline at its 100 ms slot's end

Identity = tuple[str, str, int]  # (user, kind, trigger ms)


def rules_of(settings: Settings) -> SignalRules:
    """The oracle's rules from the worker's settings."""
    return SignalRules(
        dormant_days=settings.dormant_after / DAY_S,
        churned_days=settings.churned_after / DAY_S,
        discard_days=settings.discard_after / DAY_S,
        alive_threshold=settings.alive_threshold,
        lateness_ms=round(settings.allowed_lateness * 1000),
        timezone=settings.timezone,
        r=settings.model_r,
        alpha=settings.model_alpha,
        a=settings.model_a,
        b=settings.model_b,
    )


@dataclass
class Verdict:
    """Expected (oracle) against delivered (distinct ids), and the classified differences."""

    expected: int
    delivered: int
    missing: list[Identity] = field(default_factory=list)  # unexplained: must be empty
    extra: list[Identity] = field(default_factory=list)  # unexplained: must be empty
    unidentified: list[str] = field(default_factory=list)  # ids matching no event of the user
    classified_missing: dict[str, int] = field(default_factory=dict)  # class -> count
    classified_extra: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra and not self.unidentified

    def cells(self) -> tuple[str, str]:
        """The table's missing and extra cells (unexplained, then the classified ones)."""
        return (
            self._cell(len(self.missing), self.classified_missing),
            self._cell(len(self.extra) + len(self.unidentified), self.classified_extra),
        )

    @staticmethod
    def _cell(n: int, classified: dict[str, int]) -> str:
        named = [f"{k:,} {name}" for name, k in classified.items() if k]
        return f"{n:,}" + (f" (+{', '.join(named)})" if named else "")


def identify(signals: Iterable[Signal], times: dict[str, set[int]]) -> dict[str, Identity]:
    """signal id -> (user, kind, trigger). A deadline's trigger is its event time; a
    ``reactivated`` signal's is one of the user's event times (the last before the silence)."""
    out: dict[str, Identity] = {}
    for s in signals:
        if s.signal_id in out:
            continue
        if s.kind != "reactivated":
            out[s.signal_id] = (s.user_id, s.kind, s.event_time_ms)
            continue
        for ms in times.get(s.user_id, ()):
            if signal_id(s.user_id, s.kind, ms) == s.signal_id:
                out[s.signal_id] = (s.user_id, s.kind, ms)
                break
    return out


def backlog(signals: list[Signal], extra_ids: set[str]) -> set[str]:
    """The extra ids proven overtaken: a deadline signal, and a ``reactivated`` signal of the
    same user processed no earlier whose (return) event time lies before the deadline; both."""
    returns: dict[str, list[Signal]] = {}
    for s in signals:
        if s.kind == "reactivated":
            returns.setdefault(s.user_id, []).append(s)
    first: dict[str, Signal] = {}  # the first copy processed of each extra deadline signal
    for s in signals:
        if s.signal_id not in extra_ids or s.kind == "reactivated":
            continue
        if s.signal_id not in first or s.processed_at_ms < first[s.signal_id].processed_at_ms:
            first[s.signal_id] = s
    proven: set[str] = set()
    for sid, s in first.items():
        for r in returns.get(s.user_id, ()):
            if r.event_time_ms < s.event_time_ms and r.processed_at_ms >= s.processed_at_ms:
                proven.add(sid)
                if r.signal_id in extra_ids:
                    proven.add(r.signal_id)
    return proven


def late_explained(
    differences: set[Identity], late: Iterable[Late], rules: SignalRules
) -> set[Identity]:
    """The differences (missing or extra) explained by a late event (see the module doc)."""
    by_user: dict[str, list[Late]] = {}
    for event in late:
        by_user.setdefault(event.user_id, []).append(event)

    def passed_before(user: str, deadline: int, after: int = 0) -> bool:
        """A late event of ``user`` after ``after`` lands before ``deadline``, and the clock
        could have passed that deadline when the event was read."""
        return any(
            after < e.timestamp_ms < deadline <= e.frontier_ms - rules.lateness_ms + TIMER_MS
            for e in by_user.get(user, ())
        )

    deadlines = {
        (user, kind, ms)
        for user, kind, ms in differences
        if kind != "reactivated" and passed_before(user, ms)
    }
    silence = round(rules.churned_days * 86_400_000)
    dormant = round(rules.dormant_days * 86_400_000)
    returns = {
        (user, kind, ms)
        for user, kind, ms in differences
        if kind == "reactivated"
        and (
            any(u == user and ms < d <= ms + silence for u, _, d in deadlines)
            or passed_before(user, ms + dormant, after=ms)
        )
    }
    return deadlines | returns


@dataclass(frozen=True)
class Staleness:
    """What ``ENGAGEMENT_SIGNAL_MAX_AGE`` keeps back (0: nothing)."""

    max_age_ms: int
    clock: str
    start_ms: int  # wall ms when the scenario started

    def stale(self, kind: str, at_ms: int, late: dict[int, int], lateness_ms: int) -> bool:
        """``at_ms``: when the signal became true (a return: its event time); ``late``: the
        user's late events, time -> the newest time their partition had seen before them."""
        if self.max_age_ms <= 0:
            return False
        if self.clock == "wall":
            return self.start_ms - at_ms > self.max_age_ms
        if kind != "reactivated" or at_ms not in late:
            return False
        return late[at_ms] - lateness_ms - at_ms > self.max_age_ms


def judge(
    signals: list[Signal],
    events: Iterable[RawEvent],
    rules: SignalRules,
    now_ms: int,
    *,
    late: Iterable[Late] = (),
    staleness: Staleness | None = None,
) -> Verdict:
    """Compare delivered ``signals`` with the oracle's for ``events`` at ``now_ms``;
    ``late``: the events that arrived beyond the allowed lateness."""
    events, late = list(events), list(late)
    late_at: dict[str, dict[int, int]] = {}
    for read in late:
        late_at.setdefault(read.user_id, {})[read.timestamp_ms] = read.frontier_ms
    times: dict[str, set[int]] = {}
    for e in events:
        times.setdefault(e.user_id, set()).add(e.timestamp_ms)
    oracle = expected_signals(events, rules, now_ms)
    at_ms = {(s.user_id, s.kind, s.trigger_ms): s.at_ms for s in oracle.signals}
    want = set(at_ms)
    ids = identify(signals, times)
    unidentified = sorted({s.signal_id for s in signals} - set(ids))
    got = set(ids.values())
    risks = {(u, t) for u, k, t in want if k == "churn_risk"}

    def near_risk(identity: Identity, pool: set[tuple[str, int]]) -> bool:
        user, kind, ms = identity
        return kind == "churn_risk" and any(
            (user, ms + d) in pool for d in range(-RISK_TOLERANCE_MS, RISK_TOLERANCE_MS + 1)
        )

    got_risks = {(u, t) for u, k, t in got if k == "churn_risk"}
    missing = {i for i in want - got if not near_risk(i, got_risks)}
    extra = {i for i in got - want if not near_risk(i, risks)}
    verdict = Verdict(len(want), len(got), unidentified=unidentified)
    by_identity = {identity: sid for sid, identity in ids.items()}
    proven = backlog(signals, {by_identity[i] for i in extra})
    explained = late_explained(missing | extra, late, rules)

    def classify(identity: Identity, counts: dict[str, int], out: list[Identity]) -> None:
        user, kind, _ = identity
        if (
            identity in missing
            and staleness is not None
            and staleness.stale(kind, at_ms[identity], late_at.get(user, {}), rules.lateness_ms)
        ):
            name = "stale"
        elif identity in explained:
            name = "late"
        elif identity in extra and by_identity[identity] in proven:
            name = "backlog"
        else:
            out.append(identity)
            return
        counts[name] = counts.get(name, 0) + 1

    for identity in sorted(missing):
        classify(identity, verdict.classified_missing, verdict.missing)
    for identity in sorted(extra):
        classify(identity, verdict.classified_extra, verdict.extra)
    return verdict


def event_clock_now(newest_ms: int, rules: SignalRules) -> int:
    """Where the event clock ends once every input partition is idle: the newest event time
    minus the lateness, down to the deadline index's slot (a deadline fires at its slot's end)."""
    return (newest_ms - rules.lateness_ms) // TIMER_MS * TIMER_MS
