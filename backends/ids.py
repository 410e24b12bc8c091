"""Token ids checked on the host, before they go to a device: there an id outside the table would not
raise (CuPy's take and take_along_axis wrap it, a fused kernel would read past the table), so the one
place to catch it is before the copy."""
from __future__ import annotations

import numpy as np


def ids_outside(ids, high: int, skip: "int | None" = None, limit: int = 3) -> list:
    """[(position, id)] of up to `limit` host ids (a list, a NumPy array, an array.array) outside
    [0, high), leaving out those equal to `skip`; position is an index tuple. Empty when all fit."""
    a = np.asarray(ids)
    if a.size == 0 or a.dtype.kind not in "iuf":  # not numbers: from_host names the problem
        return []
    bad = (a < 0) | (a >= high)
    if skip is not None:
        bad &= a != skip
    if not bad.any():
        return []
    first = np.flatnonzero(bad)[:limit]
    return [(tuple(int(i) for i in np.unravel_index(k, a.shape)), a.flat[k].item()) for k in first]
