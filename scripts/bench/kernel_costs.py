"""What each fused CUDA kernel saves: launches and bytes moved per call, fused against CuPy's array ops
alone (TINYLLM_NO_CUDA_KERNELS), counted by the simulated CuPy (backends/cuda/sim.py) on one sequence
of the gpu-baby shapes (T 256, C 384, 6 heads, vocab 65) and scaled to its batch of 64.

    python scripts/bench/kernel_costs.py            # a markdown table (docs/gpu-kernels.md)

Bytes are whole arrays in and out of each launch: an upper bound on memory traffic (no cache), the same
rule for both columns. Launch counts do not depend on the shapes.
"""
from __future__ import annotations

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TINYLLM_CUDA_SIM", "1")

T, C, H, V, BATCH = 256, 384, 6, 65, 64
P = (6 * 12 * C * C + (V + T) * C + 13 * C) // BATCH  # gpu-baby's weights (no biases): a sequence's share


def _calls(be, fused: bool, rng):
    """(name, forward thunk -> (out, backward or None), gradient shape) for each kernel, on one sequence:
    the fused kernel, or the reference the ops run without it (CuPy's array ops)."""
    import math

    import numpy as np

    from backends.base import sorted_segment_add
    from tinyllm.ops.kernels import REFERENCE
    from tinyllm.random import RandomStream

    xp, fast = be.xp, be.fast
    k = (lambda name: getattr(fast, name)) if fused else (lambda name: REFERENCE[name])

    def a(*shape):
        return be.from_host(rng.normal(size=shape).astype("float32"))

    x, w, b, ids = a(T, C), a(C), a(C), be.from_host(rng.integers(0, V, T))
    mask = be.from_host(np.tril(np.ones((T, T), dtype=bool)))

    def dropout():
        if fused:
            return fast.dropout(xp, x, 0.2, 1, 2, 3, None)
        m = xp.astype(RandomStream(1, 2, 3).keep_mask(be, x.shape, 0.2), x.dtype) * (1 / 0.8)
        return x * m, (lambda g: (g * m,))

    def embedding_backward():
        target = xp.zeros((V, C), dtype=xp.float32)
        (fast.segment_add(xp, target, ids, x) if fused else sorted_segment_add(xp, target, ids, x))
        return target, None

    p, g, m, v = a(P), a(P), a(P), xp.abs(a(P))

    def adam():
        if fused:
            fast.adam_step(p, g, m, v, 1e-3, 0.9, 0.99, 1e-8, 0.1, 3, True)
        else:  # tinyllm/optim's Adam update in array ops
            m[...] = m * 0.9 + 0.1 * g
            v[...] = v * 0.99 + 0.01 * (g * g)
            p[...] = p * (1 - 1e-4) - (1e-3 / (1 - 0.9 ** 3)) * m / (xp.sqrt(v) / math.sqrt(1 - 0.99 ** 3) + 1e-8)
        return p, None

    return [
        ("layer_norm", lambda: k("layer_norm")(xp, x, w, b, 1e-5), (T, C)),
        ("gelu (4C wide)", lambda: k("gelu")(xp, a(T, 4 * C)), (T, 4 * C)),
        ("self_attention, causal", lambda: k("self_attention")(xp, a(1, T, 3 * C), H, mask, 0.125), (1, T, C)),
        ("cross_entropy", lambda: k("cross_entropy")(xp, a(T, V), ids), (T,)),
        ("dropout 0.2", dropout, (T, C)),
        ("embedding backward", embedding_backward, None),
        (f"AdamW over {P * BATCH / 1e6:.1f}M weights", adam, None),
    ]


def measure(fused: bool) -> dict:
    import numpy as np

    from backends.cuda import CUDABackend, sim

    be = CUDABackend(0)
    if not fused:  # CuPy's array ops alone, the Philox words too
        be.fast, be.philox_words = None, None
    rows = {}
    with be.activate():
        for name, fn, gshape in _calls(be, fused, np.random.default_rng(0)):
            for counted in (False, True):  # the first call compiles
                g = be.from_host(np.ones(gshape, dtype=np.float32)) if gshape else None
                sim.reset()
                out, backward = fn()
                fwd = dict(sim.COUNTS)
                sim.reset()
                if backward is not None:
                    backward(g)
                rows[name] = (fwd, dict(sim.COUNTS))
    return rows


def main() -> int:
    fused, plain = measure(True), measure(False)
    print(f"| op (one call, batch {BATCH} x T {T}, C {C}) | launches fwd + bwd, fused | array ops alone "
          f"| MB moved, fused | array ops alone |")
    print("|---|---|---|---|---|")
    for name in fused:
        (ff, fb), (pf, pb) = fused[name], plain[name]
        mb = lambda c: c["bytes"] * BATCH / 1e6  # noqa: E731  (one sequence measured, the batch scales it)
        print(f"| {name} | {ff['launches']} + {fb['launches']} | {pf['launches']} + {pb['launches']} "
              f"| {mb(ff) + mb(fb):,.0f} | {mb(pf) + mb(pb):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
