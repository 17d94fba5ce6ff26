"""The live model: the users' (x, t_x, T) rows, the guards on a refit, and re-arming deadlines.

How the partitions' data meet (README, "The live model"): every worker counts the users of each
partition it owns into compressed rows, (x, t_x, T) in whole days -> number of users, and
publishes them on the compacted ``<prefix>.model`` topic keyed ``rows/<partition>``. The leader
merges the newest rows of every partition, fits (:func:`agents.logic.fit.fit_rows`), and if the
fit passes :func:`judge` publishes the parameters keyed ``params`` in the parameters-file format
(:meth:`agents.logic.churn.ModelParams.to_json`). Every worker reads ``params`` and re-arms the
deadlines of its live users (:func:`apply_params`).

Pure: time is passed in; numpy and scipy are never imported here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import orjson

from agents.logic.calibration import HORIZON_DAYS, Outcomes, outcomes_of
from agents.logic.churn import Metadata, ModelParams, threshold_problem
from agents.logic.days import Calendar
from agents.logic.lifecycle import LifecycleConfig, schedule
from agents.logic.meta import META_KEY
from agents.logic.returns import is_counts_key
from agents.logic.risk_returns import RiskReturns
from agents.logic.state import Deadline, Stage, UserState, decode, encode

if TYPE_CHECKING:
    from agents.logic.engine import Engine
    from agents.logic.fit import FitResult
    from agents.logic.partition import Partition

Row = tuple[int, int, int]  # (x, t_x, T) in whole days
Rows = dict[Row, int]  # row -> number of users
ROWS_VERSION: Final = 1
PARAMS_KEY: Final = b"params"
ROWS_PREFIX: Final = b"rows/"
# not Final: mypyc 1.20 leaves a Final tuple of floats unset (NameError when read)
SANE = (1e-3, 1e4)  # every fitted parameter must lie in here (the fit's bounds are e^+-15)
_LIVE: Final = (Stage.NEW, Stage.ACTIVE, Stage.REACTIVATED)


def summary_of(state: UserState, calendar: Calendar, today: int) -> Row | None:
    """x = active days - 1, t_x = last - first active day, T = today - first active day;
    None for a user first seen after ``today``. T is raised to t_x for a user whose last
    activity is after today (state cannot forget the later days)."""
    first = calendar.day_of(state.first_ms)
    if first > today:
        return None
    t_x = state.last_day - first
    return state.active_days() - 1, t_x, max(today - first, t_x)


def user_states(part: Partition) -> Iterable[tuple[bytes, UserState]]:
    """Every user state of a partition, newest value first (pending, in flight, durable)."""
    seen: set[bytes] = {META_KEY}
    for source in (part.dirty, part.flushing):
        for key, raw in list(source.items()):
            if key not in seen and not is_counts_key(key):
                seen.add(key)
                if raw is not None:
                    yield key, decode(raw)
    for key, raw in part.store.items():
        if key not in seen and not is_counts_key(key):
            seen.add(key)
            yield key, decode(raw)


def count_rows(states: Iterable[UserState], calendar: Calendar, today: int) -> Rows:
    rows: Rows = {}
    for state in states:
        row = summary_of(state, calendar, today)
        if row is not None:
            rows[row] = rows.get(row, 0) + 1
    return rows


def merge_rows(parts: Iterable[Rows]) -> Rows:
    total: Rows = {}
    for rows in parts:
        for row, n in rows.items():
            total[row] = total.get(row, 0) + n
    return total


def encode_rows(partition: int, at_ms: int, rows: Rows) -> bytes:
    """``{"v":1,"partition":p,"at_ms":ms,"rows":[[x,t_x,T,users],...]}`` (sorted rows)."""
    flat = [[*row, n] for row, n in sorted(rows.items())]
    return orjson.dumps({"v": ROWS_VERSION, "partition": partition, "at_ms": at_ms, "rows": flat})


def decode_rows(data: bytes) -> tuple[int, int, Rows]:
    """(partition, at_ms, rows); ValueError for anything else."""
    doc = orjson.loads(data)
    if not isinstance(doc, dict) or doc.get("v") != ROWS_VERSION:
        raise ValueError("not a version 1 rows record")
    rows: Rows = {}
    for item in doc["rows"]:
        x, t_x, T, n = (int(v) for v in item)
        if x < 0 or t_x < 0 or t_x > T or n <= 0:
            raise ValueError(f"impossible row {item!r}")
        rows[(x, t_x, T)] = n
    return int(doc["partition"]), int(doc["at_ms"]), rows


def rows_key(partition: int) -> bytes:
    return ROWS_PREFIX + str(partition).encode()


def encode_params(result: FitResult, fitted_at_ms: int) -> bytes:
    """The ``params`` record: the parameters-file format with the fit's metadata."""
    metadata: Metadata = {
        "n_users": result.n_users,
        "log_likelihood": result.log_likelihood,
        "fitted_at_ms": fitted_at_ms,
    }
    return result.params.to_json(metadata)


def decode_params(data: bytes) -> tuple[ModelParams, dict[str, float]]:
    """(parameters, the fit's numeric metadata); ValueError if it is not a parameters file."""
    params = ModelParams.from_json(data)
    fit = orjson.loads(data).get("fit") or {}
    numbers = {k: float(v) for k, v in fit.items() if isinstance(v, int | float)}
    return params, numbers


def judge(result: FitResult, min_users: int) -> str | None:
    """Why a refit must not replace the parameters in use, or None if it may."""
    if result.n_users < min_users:
        return f"{result.n_users} users, fewer than {min_users}"
    if not result.converged:
        return f"did not converge: {result.message}"
    if not math.isfinite(result.log_likelihood):
        return "log-likelihood is not finite"
    low, high = SANE
    p = result.params
    for name, value in (("r", p.r), ("alpha", p.alpha), ("a", p.a), ("b", p.b)):
        if not low <= value <= high:
            return f"{name}={value:.4g} outside [{low:g}, {high:g}]"
    return None


def rearm_partition(part: Partition, lifecycle: LifecycleConfig) -> int:
    """Re-schedule every live user's deadline under new ``lifecycle`` parameters; changed
    states go to the partition's pending changes. Returns how many deadlines moved.

    A deadline that moves earlier gets an index entry; one that moves later is found by its
    old entry, which re-arms it (as in the engine)."""
    moved = 0
    for key, state in list(user_states(part)):
        if state.stage not in _LIVE or state.pending:
            continue  # deferred events wait for the deadline they were read behind
        before = (state.deadline, state.deadline_ms)
        schedule(state, lifecycle)
        if (state.deadline, state.deadline_ms) == before:
            continue
        if state.deadline is not Deadline.NONE and state.deadline_ms < before[1]:
            part.index.add(state.deadline_ms, key)
        part.dirty[key] = encode(state)
        moved += 1
    return moved


def apply_params(engine: Engine, params: ModelParams) -> tuple[int, str | None]:
    """Switch ``engine`` to ``params`` and re-arm its partitions' deadlines.

    Returns (deadlines moved, why the churn-risk signal is off or None): a threshold at or
    above the new b/(a+b) would flag every new user, so the signal is then switched off."""
    config = engine.config
    problem = threshold_problem(params, config.lifecycle.alive_threshold)
    lifecycle = dataclasses.replace(config.lifecycle, params=params, risk_on=problem is None)
    if lifecycle == config.lifecycle:
        return 0, problem
    engine.config = dataclasses.replace(config, lifecycle=lifecycle)
    moved = sum(rearm_partition(part, lifecycle) for part in engine.partitions.values())
    return moved, problem


def engine_rows(engine: Engine, wall_ms: int) -> dict[int, tuple[int, Rows]]:
    """Per owned partition: (its now, its rows at that now's day); a partition whose clock
    has not started yet has no rows (and says so, so the fit need not wait for it)."""
    calendar = engine.config.calendar
    out: dict[int, tuple[int, Rows]] = {}
    for number, part in engine.partitions.items():
        now = engine.partition_now(part, wall_ms)
        if now <= 0:
            out[number] = (0, {})
            continue
        states = (state for _, state in user_states(part))
        out[number] = (now, count_rows(states, calendar, calendar.day_of(now)))
    return out


def engine_outcomes(
    engine: Engine,
    wall_ms: int,
    horizon: int = HORIZON_DAYS,
    risk: RiskReturns | None = None,
) -> Outcomes:
    """The owned partitions' users at the end of the day ``horizon`` + 1 days before each
    partition's today, with their active days in the ``horizon`` complete days after it; with
    ``risk``, the same users counted into the churn-risk return rates too (one pass)."""
    calendar = engine.config.calendar
    total: Outcomes = {}
    for part in engine.partitions.values():
        now = engine.partition_now(part, wall_ms)
        if now <= 0:
            continue
        today = calendar.day_of(now)
        states: Iterable[UserState] = (state for _, state in user_states(part))
        if risk is not None:
            states = risk.passing(states, calendar, today)
        for key, (n, after) in outcomes_of(states, calendar, today - horizon - 1, horizon).items():
            have_n, have_after = total.get(key, (0, 0))
            total[key] = (have_n + n, have_after + after)
    return total
