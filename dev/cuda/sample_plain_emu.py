# sample_plain_emu.py: float32 numpy emulation of sample.cu's one-pass plain categorical path
# (sample_plain + draw_id_order with masses_ready): 32 warps, each owning a contiguous 32-aligned
# segment of ids; per lane a running (max, mass) over ids lane, lane + 32, ... of its segment
# (the online softmax), the xor-shuffle merge of the 32 lanes, the block's masses relative to the
# row max, the warp pick (the last warp with mass > 0 whose prefix <= u * total), and the walk of
# the picked warp's segment 32 ids at a time. Compared against the host sampler's rule
# (sample/sampler.c: probabilities exp(s - max) in id order, double sums, the first id whose
# running sum exceeds u * total) on random rows of several sharpnesses, -inf entries included.
# Written where no GPU was available (session 10) to check the index and mass arithmetic; the
# real check is tests/gpu/test_cuda_sampler (>= 99% agreement, the rest within rounding of a
# CDF boundary).
# Usage: python3 dev/cuda/sample_plain_emu.py [seed] [rows]
import sys

import numpy as np

WARPS = 32
f32 = np.float32


def host_draw(logits, it, u):
    s = logits.astype(f32) * f32(it)
    fin = s != -np.inf
    if not fin.any():
        return -1
    mx = s[fin].max()
    p = np.where(fin, np.exp((s - mx).astype(np.float64)), 0.0)
    target = u * p.sum()
    acc, tok = 0.0, -1
    for i in np.nonzero(p)[0]:
        acc += p[i]
        tok = i
        if acc > target:
            break
    return int(tok)


def device_draw(raw, it, u):
    V = raw.size
    seg = ((V + WARPS - 1) // WARPS + 31) & ~31
    wm, ws = np.full(WARPS, -np.inf, f32), np.zeros(WARPS, f32)
    for w in range(WARPS):
        lo, hi = w * seg, min(V, w * seg + seg)
        lm, ls = np.full(32, -np.inf, f32), np.zeros(32, f32)
        for l in range(32):  # each lane's running (max, mass)
            m, s = f32(-np.inf), f32(0)
            for i in range(lo + l, hi, 32):
                v = f32(raw[i] * f32(it))
                if v == -np.inf:
                    continue
                if v > m:
                    s = f32(s * np.exp(f32(m - v))) + f32(1) if m != -np.inf else f32(1)
                    m = v
                else:
                    s = f32(s + np.exp(f32(v - m)))
            lm[l], ls[l] = m, s
        for o in (16, 8, 4, 2, 1):  # xor-shuffle merge
            om, os_ = lm[np.arange(32) ^ o], ls[np.arange(32) ^ o]
            mm = np.maximum(lm, om)
            a = np.where(lm == -np.inf, f32(0), ls * np.exp(np.where(lm == -np.inf, f32(0), lm - mm)))
            b = np.where(om == -np.inf, f32(0), os_ * np.exp(np.where(om == -np.inf, f32(0), om - mm)))
            lm, ls = mm.astype(f32), (a + b).astype(f32)
        wm[w], ws[w] = lm[0], ls[0]
    M = wm.max()
    if M == -np.inf:
        return -1
    mass = np.where(wm == -np.inf, f32(0), ws * np.exp(np.where(wm == -np.inf, f32(0), wm - M))).astype(f32)
    pre, pres = f32(0), np.zeros(WARPS, f32)
    for w in range(WARPS):
        pres[w] = pre
        pre = f32(pre + mass[w])
    target = f32(f32(u) * pre)
    pick = -1
    for w in range(WARPS):
        if mass[w] > 0 and (pick < 0 or pres[w] <= target):
            pick = w
    if pick < 0:
        return -1
    rel = f32(target - pres[pick])
    lo, hi = pick * seg, min(V, pick * seg + seg)
    run, last = f32(0), -1
    for base in range(lo, hi, 32):
        ids = np.arange(base, base + 32)
        v = np.where(ids < hi, raw[np.minimum(ids, V - 1)].astype(f32) * f32(it), f32(-np.inf)).astype(f32)
        kept = (ids < hi) & (v != -np.inf)
        wgt = np.where(kept, np.exp(np.where(kept, v - M, f32(0))), f32(0)).astype(f32)
        x2 = np.cumsum(wgt, dtype=f32)  # the warp's inclusive scan
        hit = kept & (run + x2 > rel)
        if hit.any():
            return int(base + np.argmax(hit))
        if kept.any():
            last = int(base + np.nonzero(kept)[0].max())
        run = f32(run + x2[31])
    return last


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 120
    rng = np.random.default_rng(seed)
    agree = total = 0
    worst = []
    for r in range(rows):
        V = int(rng.choice([3000, 4099, 151936 // 16]))
        std = [0.2, 1.0, 3.0, 8.0, 14.0][r % 5]
        raw = (rng.standard_normal(V) * std).astype(f32)
        if r % 3 == 0:  # some -inf (a row whose earlier processing killed tokens)
            raw[rng.integers(0, V, V // 10)] = -np.inf
        if r % 17 == 0:  # a whole warp segment of -inf
            raw[: V // 32] = -np.inf
        it = [1.0, 1 / 0.7, 1 / 1.3][r % 3]
        u = float(rng.random())
        h, d = host_draw(raw, it, u), device_draw(raw, it, u)
        total += 1
        if h == d:
            agree += 1
        else:
            worst.append((r, V, std, h, d))
    print("sample_plain_emu: %d of %d rows agree with the host rule" % (agree, total))
    for w in worst[:5]:
        print("  differs: row %d V %d std %.1f host %d device %d" % w)
    return 0 if agree >= 0.99 * total else 1


if __name__ == "__main__":
    with np.errstate(invalid="ignore"):  # -inf - -inf in np.where's unchosen branch
        sys.exit(main())
