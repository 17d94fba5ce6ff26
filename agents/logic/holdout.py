"""The holdout: which signalled users are left alone, so a win-back can be measured.

A signal's ``arm`` is ``holdout`` when the user's draw for that signal kind falls below the
holdout share, else ``treatment``. The draw is a stable hash, so a user stays in one arm for a
kind across signals, workers, restarts and replays, and any language can reproduce it:

    draw = first 8 bytes of SHA-256(UTF-8 of user_id + "\\x1f" + kind + "\\x1f" + salt),
           read as a big-endian unsigned integer, divided by 2**64       (uniform in [0, 1))
    arm  = "holdout" if draw < ENGAGEMENT_HOLDOUT_SHARE else "treatment"

Consumers must not act on holdout signals: they are the control group of the return-rate
uplift (:mod:`agents.logic.returns`).
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256
from typing import Final

from schemas.records import ARMS

__all__ = ["ARMS", "HOLDOUT", "TREATMENT", "arm_of", "arms_for", "holdout_draw"]
TREATMENT, HOLDOUT = 0, 1  # the arm's code in state and counters: its index in ARMS
# Each draw copies this empty hash: with OpenSSL 3 a new hash object fetches its digest method
# (provider lookup under a lock) every time, a copy does not (openssl/openssl#19612).
_SHA256: Final = sha256()
_TWO_TO_MINUS_64: Final = 2.0**-64


def holdout_draw(user_id: str, kind: str, salt: str) -> float:
    """The user's uniform draw in [0, 1) for ``kind`` (module docstring)."""
    hashed = _SHA256.copy()
    hashed.update(f"{user_id}\x1f{kind}\x1f{salt}".encode())
    # float(n) * 2**-64 is n / 2**64 to the bit (float(n) rounds n to 53 bits as the true
    # division does, and scaling by a power of two is exact), without dividing a 65-bit int
    return float(int.from_bytes(hashed.digest()[:8], "big")) * _TWO_TO_MINUS_64


def arm_of(user_id: str, kind: str, salt: str, share: float) -> int:
    """:data:`HOLDOUT` if the draw falls below ``share`` (0 turns the holdout off)."""
    return HOLDOUT if share > 0 and holdout_draw(user_id, kind, salt) < share else TREATMENT


def arms_for(user_id: str, salt: str, share: float) -> Callable[[str], int]:
    """The user's arm per signal kind, as the walk asks for it."""
    return lambda kind: arm_of(user_id, kind, salt, share)
