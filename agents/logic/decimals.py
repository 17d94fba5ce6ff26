"""``round(x, digits)`` for the figures a signal reports, the same float to the bit, cheaper.

CPython's ``round(x, n)`` (``float.__round__``) asks ``_Py_dg_dtoa`` for the decimal string of
``x`` correctly rounded (half to even) to ``n`` places and reads it back with ``_Py_dg_strtod``:
about 2,500 instructions a call, and a signal rounds three figures plus three per category.

:func:`round_to` gets the same float without the strings. Let ``Y`` be the exact product
``|x| * 10**n`` and ``y`` the double it rounds to. Below 2**52 every half-integer is a double and
rounding is monotonic, so ``Y < k + 1/2`` gives ``y <= k + 1/2`` and ``Y > k + 1/2`` gives
``y >= k + 1/2``: when ``y``'s fraction is not exactly one half, it is on the same side of the
half as ``Y``'s and names the same nearest integer ``r``. When it is exactly one half, ``Y`` may
lie on either side (or on the tie), and :func:`round_to` calls ``round`` itself. ``r`` and
``10**n`` (``n <= 22``) are exact doubles, so ``r / 10**n`` is correctly rounded by IEEE division:
the double nearest ``r / 10**n``, which is what ``strtod`` returns for the decimal string. The
sign is copied back, so ``-0.0`` stays ``-0.0`` as ``round`` keeps it. NaN, infinities and
figures too large to have a fraction take ``round``'s own path.
"""

from __future__ import annotations

from math import copysign
from typing import Final

_POWERS: Final = tuple(10.0**n for n in range(23))  # each exact: 5**22 < 2**53
_LIMIT: Final = 2.0**52  # from here up a double has no fraction to round
_ROUND: Final = round  # bound once (compiled, ``round(x, n)`` looks the builtin up by name)


def round_to(x: float, digits: int) -> float:
    """``round(x, digits)``, the same float to the bit (``digits`` outside 0-22: ``round``'s)."""
    if not 0 <= digits <= 22:
        return _ROUND(x, digits)
    scale = _POWERS[digits]
    y = abs(x) * scale
    if not y < _LIMIT:  # also NaN
        return _ROUND(x, digits)
    whole = int(y)  # y >= 0: truncation is the floor
    fraction = y - whole  # exact: the low bits of y
    if fraction == 0.5:
        return _ROUND(x, digits)  # the product may have been rounded onto the half: the slow way
    if fraction > 0.5:
        whole += 1
    return copysign(whole / scale, x)
