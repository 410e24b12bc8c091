"""numba's settings for every loop in this package.

`reassoc` lets row sums vectorize (an order of additions, like NumPy's pairwise one, not the same
bits) and `contract` allows FMAs; NaN and inf keep their IEEE meaning (no nnan/ninf), so a NaN
loss is still seen; error_model="numpy" makes 1/0 inf instead of an exception. nogil lets the
thread policy's helpers run pieces at once; cache keeps the compiled code on disk.
"""
import numba

loop = numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")
