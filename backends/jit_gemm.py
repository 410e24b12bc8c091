"""A compiled (numba) caller of MKL's cblas_sgemm (float32) for backends/mkl_gemm.py.

Through ctypes a small product cost ~18 us a call on top of the GEMM itself:
converting fourteen arguments and reading three arrays' addresses
(`a.ctypes.data`, ~2-6 us each). The same call from a numba function takes
~2 us; in-process A/B, cpu-small (51 products a step): 0.977 of the step at
1 thread and 0.971 at 2, the same bits. The function's address is an argument (so the
compiled code can be cached on disk; a ctypes function inside it could not),
called through a pointer cast in LLVM IR.

One explicit signature (float32 operands of any layout, the output
C-contiguous) compiles (or loads from numba's cache) once, when first built:
~0.1-0.2 s at start-up.
"""
from __future__ import annotations

_caller = None  # call(fn, trans_a, trans_b, a, lda, b, ldb, out, alpha) for float32, or False without numba


def caller():
    """The compiled caller, or None (no numba, TINYLLM_NO_JIT=1, or a numba that fails)."""
    global _caller
    if _caller is None:
        from .jit_cpu import jit_loops

        _caller = False
        if jit_loops() is not None:  # numba is there and works (and TINYLLM_NO_JIT is not set)
            try:
                _caller = _build()
            except Exception:  # a numba that cannot build it: ctypes serves
                _caller = False
    return _caller or None


def _build():  # pragma: no cover - compiled; tests/test_mkl_gemm.py runs it through matmul2d
    import numba
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def gemm_at(typingctx, fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc):
        """cblas_?gemm(row major, ta, tb, m, n, k, alpha, a, lda, b, ldb, 0, c, ldc) at address fn;
        integers arrive as intp (MKL's LP64 interface takes 32-bit ones), addresses as integers."""
        sig = types.void(fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, c, ldc)

        def codegen(context, builder, signature, args):
            i32, ptr = ir.IntType(32), ir.IntType(8).as_pointer()
            real = context.get_value_type(signature.args[6])
            proto = ir.FunctionType(ir.VoidType(), [i32] * 6 + [real, ptr, i32, ptr, i32, real, ptr, i32])
            f = builder.inttoptr(args[0], proto.as_pointer())
            n32 = [builder.trunc(v, i32) for v in args[1:6]]
            builder.call(f, [ir.Constant(i32, 101)] + n32 + [  # 101: CblasRowMajor
                args[6], builder.inttoptr(args[7], ptr), builder.trunc(args[8], i32),
                builder.inttoptr(args[9], ptr), builder.trunc(args[10], i32), ir.Constant(real, 0.0),
                builder.inttoptr(args[11], ptr), builder.trunc(args[12], i32)])
            return context.get_dummy_value()

        return sig, codegen

    f32 = types.float32  # training's dtype; float64 (the gradient checks' small products) keeps ctypes
    sig = types.void(types.intp, types.intp, types.intp, f32[:, :], types.intp, f32[:, :], types.intp, f32[:, ::1], f32)

    @numba.njit(sig, nogil=True, cache=True)
    def call(fn, ta, tb, a, lda, b, ldb, out, alpha):
        m, n = out.shape
        gemm_at(fn, ta, tb, m, n, a.shape[1], alpha, a.ctypes.data, lda, b.ctypes.data, ldb, out.ctypes.data, n)

    return call
