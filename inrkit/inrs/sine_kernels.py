"""Triton kernels of the fused sine layers (see ``fused_sine``, which imports this only where Triton runs).

Kernels live at module level: Triton resolves the functions a kernel calls through its module.
"""
import triton
import triton.language as tl


@triton.jit
def _dot(a, b, acc, PREC: tl.constexpr):
    if PREC == "bf16x3":
        a_hi = a.to(tl.bfloat16)
        a_lo = (a - a_hi.to(tl.float32)).to(tl.bfloat16)
        b_hi = b.to(tl.bfloat16)
        b_lo = (b - b_hi.to(tl.float32)).to(tl.bfloat16)
        acc = tl.dot(a_lo, b_hi, acc)
        acc = tl.dot(a_hi, b_lo, acc)
        acc = tl.dot(a_hi, b_hi, acc)
    elif PREC == "bf16":
        acc = tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), acc)
    elif PREC == "fp32":
        acc = tl.dot(a, b, acc, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc, input_precision=PREC)
    return acc


@triton.jit
def forward_kernel(X, W, A, N, K: tl.constexpr, M: tl.constexpr, sxb, sxn, sxk, swb, swk, swm, sab, san, sam, w0_in,
                   SINE_IN: tl.constexpr, PREC: tl.constexpr,
                   BN: tl.constexpr, BM: tl.constexpr, BK: tl.constexpr):
    """A[b] = act(X[b]) @ W[b, :K] + W[b, K]; act = sin(w0_in ·) when SINE_IN."""
    pn, pm, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rn = pn * BN + tl.arange(0, BN)
    rm = pm * BM + tl.arange(0, BM)
    rk = tl.arange(0, BK)
    x_base = X + b.to(tl.int64) * sxb
    w_base = W + b.to(tl.int64) * swb
    acc = tl.zeros((BN, BM), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + rk
        x = tl.load(x_base + rn[:, None].to(tl.int64) * sxn + kk[None, :] * sxk,
                    mask=(rn[:, None] < N) & (kk[None, :] < K), other=0.0)
        if SINE_IN:
            x = tl.sin(w0_in * x)
        w = tl.load(w_base + kk[:, None] * swk + rm[None, :] * swm,
                    mask=(kk[:, None] < K) & (rm[None, :] < M), other=0.0)
        acc = _dot(x, w, acc, PREC)
    bias = tl.load(w_base + K * swk + rm * swm, mask=rm < M, other=0.0)
    acc += bias[None, :]
    a_base = A + b.to(tl.int64) * sab
    tl.store(a_base + rn[:, None].to(tl.int64) * san + rm[None, :] * sam, acc,
             mask=(rn[:, None] < N) & (rm[None, :] < M))


@triton.jit
def grad_input_kernel(G, W, P, O, N, K: tl.constexpr, M: tl.constexpr, sgb, sgn, sgm, swb, swk, swm, spb, spn, spk, sob, son, sok, w0_in,
                      COS_OUT: tl.constexpr, PREC: tl.constexpr,
                      BN: tl.constexpr, BK: tl.constexpr, BM: tl.constexpr):
    """O[b] = (G[b] @ W[b, :K]^T) ⊙ (w0_in cos(w0_in P[b]) when COS_OUT): the gradient that
    reaches the previous layer's pre-activation P (or the coordinates, without COS_OUT)."""
    pn, pk, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rn = pn * BN + tl.arange(0, BN)
    rk = pk * BK + tl.arange(0, BK)
    rm = tl.arange(0, BM)
    g_base = G + b.to(tl.int64) * sgb
    w_base = W + b.to(tl.int64) * swb
    acc = tl.zeros((BN, BK), dtype=tl.float32)
    for m0 in range(0, M, BM):
        mm = m0 + rm
        g = tl.load(g_base + rn[:, None].to(tl.int64) * sgn + mm[None, :] * sgm,
                    mask=(rn[:, None] < N) & (mm[None, :] < M), other=0.0)
        # W's rows are contiguous in m: load the (k, m) tile as stored and transpose it on chip
        w = tl.load(w_base + rk[:, None] * swk + mm[None, :] * swm,
                    mask=(rk[:, None] < K) & (mm[None, :] < M), other=0.0)
        wt = tl.trans(w)
        acc = _dot(g, wt, acc, PREC)
    mask = (rn[:, None] < N) & (rk[None, :] < K)
    if COS_OUT:
        p = tl.load(P + b.to(tl.int64) * spb + rn[:, None].to(tl.int64) * spn + rk[None, :] * spk, mask=mask, other=0.0)
        acc = acc * (w0_in * tl.cos(w0_in * p))
    tl.store(O + b.to(tl.int64) * sob + rn[:, None].to(tl.int64) * son + rk[None, :] * sok, acc, mask=mask)


@triton.jit
def grad_weight_kernel(X, G, D, N: tl.constexpr, K: tl.constexpr, M: tl.constexpr, sxb, sxn, sxk, sgb, sgn, sgm, sdb, sdk, sdm, w0_in,
                       SINE_IN: tl.constexpr, PREC: tl.constexpr,
                       BK: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    """D[b, :K] = act(X[b])^T @ G[b] and D[b, K] = Σ_n G[b, n] (the bias row)."""
    pk, pm, b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rk = pk * BK + tl.arange(0, BK)
    rm = pm * BM + tl.arange(0, BM)
    rn = tl.arange(0, BN)
    x_base = X + b.to(tl.int64) * sxb
    g_base = G + b.to(tl.int64) * sgb
    acc = tl.zeros((BK, BM), dtype=tl.float32)
    bias = tl.zeros((BM,), dtype=tl.float32)
    for n0 in range(0, N, BN):
        nn = n0 + rn
        # X's rows are contiguous in k: load the (n, k) tile as stored and transpose it on chip
        x = tl.load(x_base + nn[:, None].to(tl.int64) * sxn + rk[None, :] * sxk,
                    mask=(nn[:, None] < N) & (rk[None, :] < K), other=0.0)
        if SINE_IN:
            x = tl.sin(w0_in * x)
        xt = tl.trans(x)
        g = tl.load(g_base + nn[:, None].to(tl.int64) * sgn + rm[None, :] * sgm,
                    mask=(nn[:, None] < N) & (rm[None, :] < M), other=0.0)
        acc = _dot(xt, g, acc, PREC)
        bias += tl.sum(g, axis=0)
    d_base = D + b.to(tl.int64) * sdb
    tl.store(d_base + rk[:, None] * sdk + rm[None, :] * sdm, acc, mask=(rk[:, None] < K) & (rm[None, :] < M))
    if pk == 0:
        tl.store(d_base + K * sdk + rm * sdm, bias, mask=rm < M)
