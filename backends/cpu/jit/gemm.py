"""A compiled caller of MKL's cblas_sgemm (float32) for backends/cpu/mkl.py: a call from numba
costs a fraction of what ctypes' conversion of fourteen arguments and three arrays' addresses
does (docs/speed.md).

The function's address is an argument, called through a pointer cast in LLVM IR, so the
compiled code caches on disk (a ctypes function inside it could not). One explicit signature
(float32 operands of any layout, the output C-contiguous) compiles, or loads from numba's cache,
when this module is imported: jit.gemm_caller() does that once MKL is loaded.
"""
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
SIGNATURE = types.void(types.intp, types.intp, types.intp, f32[:, :], types.intp, f32[:, :], types.intp, f32[:, ::1], f32)


@numba.njit(SIGNATURE, nogil=True, cache=True)
def call(fn, ta, tb, a, lda, b, ldb, out, alpha):
    """out = alpha op(a) @ op(b) by the cblas_sgemm at address fn (op: transposed where ta, tb say)."""
    m, n = out.shape
    gemm_at(fn, ta, tb, m, n, a.shape[1], alpha, a.ctypes.data, lda, b.ctypes.data, ldb, out.ctypes.data, n)
