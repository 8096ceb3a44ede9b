"""fma(a, b, c): a * b + c rounded once, for kernels.

The project compiles without fastmath (engine/jit.py), so LLVM never contracts a * b + c into a
fused multiply-add on its own; a kernel that wants one asks for it here. The result is the
correctly rounded a * b + c, the same bits on every machine (LLVM's llvm.fma, which vectorises to
the FMA instructions of x86-64 and ARM), and more accurate than a multiply and an add.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload


def fma(a, b, c):
    """a * b + c rounded once (compiled: LLVM's fma, which vectorises; the same bits on every
    machine, unlike letting the compiler contract a * b + c). As plain Python: rounded twice."""
    return a * b + c


@intrinsic
def _fma(typingctx, a, b, c):
    if not (isinstance(a, types.Float) and a == b and b == c):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty, ty, ty]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


@overload(fma)
def _fma_overload(a, b, c):
    return lambda a, b, c: _fma(a, b, c)
