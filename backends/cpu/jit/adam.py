"""The Adam / AdamW update in one compiled pass over the flat buffers (FMAs allowed)."""
import math

import numpy as np

from .compiler import loop

LOOPS = ("adam",)


@loop
def adam(p, g, m, v, b1, b2, omb1, omb2, step_scale, inv_sqrt_bc2, eps, decay, l2):
    """One Adam/AdamW update in place over flat buffers: m, v moments; p -= step_scale m / (sqrt(v / bc2) + eps);
    omb1, omb2 = 1 - b1, 1 - b2; decay = 1 - lr wd (AdamW, else 1), l2 = wd for Adam's gradient term (else 0)."""
    for i in range(p.size):
        gi = g[i] + l2 * p[i]
        mi = m[i] * b1 + gi * omb1
        vi = v[i] * b2 + gi * gi * omb2
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_scale * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


def compile_float32():
    """Compile (or load from the cache) the float32 version, what training runs."""
    f = np.ones(6, dtype=np.float32)
    adam(f.copy(), f, f.copy(), f.copy(), *[np.float32(1.0)] * 9)
