"""exp for kernels: `exp_fast` (float32, vectorises) and `softmax_exp`, which picks it for
float32 and math.exp for float64.

math.exp compiles to a call into libm, one element at a time (about 5 ns a float32 element
here): a softmax over 256 x 10 logits spent 13 of its 15 us there. exp_fast is Cephes' expf,
arithmetic only, so LLVM vectorises a loop of it: x = n ln 2 + r with |r| <= ln 2 / 2 (ln 2 in
two parts, so r is exact), e^r by a degree-7 polynomial, 2^n put straight into the exponent bits.
Error under 1 ulp against the exact e^x (0.98 at worst over [-87.3, 88.3], tests/test_losses.py).
float64 keeps math.exp, so the gradient checks against torch see the exact function.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .jit import jit, jit_overload

_F = np.float32
_HI, _LO = _F(88.3762626647949), _F(-87.3365447505531)   # e^x with 2^n a normal float32; 0 below
_LOG2E, _ROUND = _F(1.44269504088896341), _F(12582912.0)   # 1.5 * 2^23: adding it rounds to an integer
_C1, _C2 = _F(0.693359375), _F(-2.12194440e-4)
_P0, _P1, _P2 = _F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3)
_P3, _P4, _P5 = _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1)
_ONE, _ZERO = _F(1.0), _F(0.0)


def float_from_bits(bits):
    """The float32 whose bits are the int32 `bits` (compiled: a bitcast, which vectorises)."""
    return np.array(bits, np.int32).view(np.float32)[()]


@intrinsic
def _float_from_bits(typingctx, bits):
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@overload(float_from_bits)
def _float_from_bits_overload(bits):
    return lambda bits: _float_from_bits(bits)


@jit
def exp_fast(x):
    """e^x for a float32 x <= 88.37 (above it, e^88.37); 0 below -87.34; NaN stays NaN."""
    c = min(max(x, _LO), _HI)
    n = (c * _LOG2E + _ROUND) - _ROUND          # round(c / ln 2), exact without fastmath
    r = c - n * _C1
    r = r - n * _C2
    p = _P0 * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    y = p * (r * r) + r + _ONE
    y = y * float_from_bits(np.int32((np.int32(n) + 127) << 23))
    if x < _LO:
        y = _ZERO
    if x != x:
        y = x
    return y


def softmax_exp(x):
    """e^x: exp_fast for float32, math.exp for float64 (compiled through the overload below,
    chosen by x's type)."""
    return exp_fast(x) if isinstance(x, np.float32) else math.exp(x)


@jit_overload(softmax_exp)
def _softmax_exp(x):
    if x == types.float32:
        return lambda x: exp_fast(x)
    return lambda x: math.exp(x)
