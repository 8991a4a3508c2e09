# decode_attn_tc_emu.py: numpy emulation of one warp of decode_attn_tc_kernel (src/backend/cuda/
# decode_attn_tc.cu): the stage loads (lane -> key/chunk), ldmatrix / ldmatrix.trans, mma m16n8k16
# fragment layouts, the fp8 dim permutations, the online softmax and the epilogue's dim order, for
# hd 64/128, bf16 and fp8 caches, G 1..8, partial groups. Checks the index arithmetic without a GPU
# (written where none was available); the real check is tests/gpu/test_cuda_ops.
# Usage: python3 dev/cuda/decode_attn_tc_emu.py [seed]
import numpy as np, sys
rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 1)

def e4m3_decode(b):
    b = int(b); s = -1.0 if b & 0x80 else 1.0; e = (b >> 3) & 15; m = b & 7
    if e == 15 and m == 7: return float('nan')
    return s * (m / 8.0 * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7))
E4 = np.array([e4m3_decode(i) for i in range(256)])
def bf16_bits(x):  # round-to-nearest-even float32 -> bf16 bits
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype(np.uint16)
def bf16_val(bits): return (np.asarray(bits, np.uint32) << 16).view(np.float32).astype(np.float64)
def f16_bits(x): return np.asarray(x, np.float16).view(np.uint16)
def f16_val(bits): return np.asarray(bits, np.uint16).view(np.float16).astype(np.float64)

def run(HD, fp8, G, ngroups_keys, seed):
    EB = 1 if fp8 else 2; ROWB = HD * EB; RS = ROWB + 16; CPR = ROWB // 16; CPL = CPR // 2; KSTEP = 32 // CPR
    F16 = fp8
    nkeys = ngroups_keys
    # global rows of this kv head, as bytes
    if fp8:
        kb_ = (rng.integers(0, 256, (nkeys + 16, HD)) & 0xbf).astype(np.uint8); vb_ = (rng.integers(0, 256, (nkeys + 16, HD)) & 0xbf).astype(np.uint8)
        kb_[(kb_ & 0x7f) == 0x7f] = 0x10; vb_[(vb_ & 0x7f) == 0x7f] = 0x11
        K = E4[kb_]; V = E4[vb_]; Kbytes = kb_; Vbytes = vb_
    else:
        kbits = bf16_bits(rng.uniform(-2, 2, (nkeys + 16, HD))); vbits = bf16_bits(rng.uniform(-1, 1, (nkeys + 16, HD)))
        K = bf16_val(kbits); V = bf16_val(vbits)
        Kbytes = kbits.view(np.uint8).reshape(nkeys + 16, ROWB); Vbytes = vbits.view(np.uint8).reshape(nkeys + 16, ROWB)
    qbits = bf16_bits(rng.uniform(-2, 2, (G, HD))); Q = bf16_val(qbits)
    sl2 = 1.4426950408889634 / np.sqrt(HD)
    # Q fragments per lane
    qa = np.zeros((32, HD // 16, 2), np.uint32)
    for lane in range(32):
        g, t4 = lane >> 2, lane & 3
        if g >= G: continue
        for kk in range(HD // 16):
            if F16:
                d = kk * 16 + 4 * t4
                f = Q[g, d:d + 4] * np.float32(sl2)
                fb = f16_bits(f.astype(np.float32)).astype(np.uint32)
                qa[lane, kk, 0] = fb[0] | (fb[1] << 16); qa[lane, kk, 1] = fb[2] | (fb[3] << 16)
            else:
                b = qbits[g].astype(np.uint32)
                d = kk * 16 + 2 * t4
                qa[lane, kk, 0] = b[d] | (b[d + 1] << 16); qa[lane, kk, 1] = b[d + 8] | (b[d + 9] << 16)
    half = (lambda bits: f16_val(bits)) if F16 else (lambda bits: bf16_val(bits))
    def mma(d, a, b0, b1):  # d[32][4], a[32][4], b0/b1[32]
        A = np.zeros((16, 16)); B = np.zeros((16, 8))
        for L in range(32):
            g, t4 = L >> 2, L & 3
            for r, (row, k) in enumerate([(g, 2 * t4), (g + 8, 2 * t4), (g, 2 * t4 + 8), (g + 8, 2 * t4 + 8)]):
                A[row, k] = half(a[L][r] & 0xffff); A[row, k + 1] = half(a[L][r] >> 16)
            B[2 * t4, g] = half(b0[L] & 0xffff); B[2 * t4 + 1, g] = half(b0[L] >> 16)
            B[2 * t4 + 8, g] = half(b1[L] & 0xffff); B[2 * t4 + 9, g] = half(b1[L] >> 16)
        D = A @ B
        for L in range(32):
            g, t4 = L >> 2, L & 3
            d[L][0] += D[g, 2 * t4]; d[L][1] += D[g, 2 * t4 + 1]; d[L][2] += D[g + 8, 2 * t4]; d[L][3] += D[g + 8, 2 * t4 + 1]
    def ldm(stage, addrs, trans):
        regs = np.zeros((32, 4), np.uint32)
        for m in range(4):
            rows = [stage[addrs[8 * m + r]: addrs[8 * m + r] + 16].view(np.uint16) for r in range(8)]
            for L in range(32):
                g, t4 = L >> 2, L & 3
                if trans: lo, hi = rows[2 * t4][g], rows[2 * t4 + 1][g]
                else: lo, hi = rows[g][2 * t4], rows[g][2 * t4 + 1]
                regs[L, m] = int(lo) | (int(hi) << 16)
        return regs
    def cvt(v, hi):  # e4m3x2 -> f16x2
        x = (v >> 16) if hi else (v & 0xffff)
        a = f16_bits(np.float32(E4[x & 0xff])); b = f16_bits(np.float32(E4[(x >> 8) & 0xff]))
        return int(a) | (int(b) << 16)
    def perm3120(v):
        by = [(v >> (8 * i)) & 0xff for i in range(4)]
        return by[0] | (by[2] << 8) | (by[1] << 16) | (by[3] << 24)
    # loop over groups, one warp, keys [0, ke)
    ke = nkeys
    o = np.zeros((32, HD // 8, 4)); m = np.full(32, -np.inf); l = np.zeros(32)
    for j0 in range(0, ke, 16):
        stage = np.zeros(2 * 16 * RS, np.uint8)
        written = np.zeros(2 * 16 * RS, bool)
        for lane in range(32):
            ch, key0 = lane % CPR, lane // CPR
            for i in range(CPL):
                key = key0 + i * KSTEP; j = j0 + key
                dst = key * RS + ch * 16
                for src, base in ((Kbytes, 0), (Vbytes, 16 * RS)):
                    assert not written[base + dst: base + dst + 16].any()
                    written[base + dst: base + dst + 16] = True
                    stage[base + dst: base + dst + 16] = src[j, ch * 16: ch * 16 + 16] if j < ke else 0
        for key in range(16):
            for base in (0, 16 * RS): assert written[base + key * RS: base + key * RS + ROWB].all()
        ks = 0; vs = 16 * RS
        sacc = np.zeros((2, 32, 4))
        if F16:
            addrs = [ks + ((L & 7) + ((L >> 3) & 1) * 8) * RS + (L >> 4) * 16 for L in range(32)]
            for c in range(0, HD // 16, 2):
                r = ldm(stage, [a + c * 16 for a in addrs], False)
                for mm in range(4):
                    a = [[qa[L, c + (mm >> 1), 0], 0, qa[L, c + (mm >> 1), 1], 0] for L in range(32)]
                    mma(sacc[mm & 1], a, [cvt(r[L, mm], False) for L in range(32)], [cvt(r[L, mm], True) for L in range(32)])
        else:
            addrs = [ks + ((L & 7) + ((L >> 4) & 1) * 8) * RS + ((L >> 3) & 1) * 16 for L in range(32)]
            for kk in range(HD // 16):
                r = ldm(stage, [a + kk * 32 for a in addrs], False)
                a = [[qa[L, kk, 0], 0, qa[L, kk, 1], 0] for L in range(32)]
                mma(sacc[0], a, r[:, 0], r[:, 1]); mma(sacc[1], a, r[:, 2], r[:, 3])
        pa = np.zeros((32, 4), np.uint32)
        sv = np.zeros((32, 4))
        for L in range(32):
            t4 = L & 3
            sv[L] = [sacc[0][L][0], sacc[0][L][1], sacc[1][L][0], sacc[1][L][1]]
            if not F16: sv[L] *= sl2
            for e in range(4):
                if j0 + (e >> 1) * 8 + 2 * t4 + (e & 1) >= ke: sv[L, e] = -np.inf
        mx = sv.max(1)
        for L in range(32): mx[L] = max(mx[(L & ~3) + t] for t in range(4))
        for L in range(32):
            mn = max(m[L], mx[L]); alpha = 2.0 ** (m[L] - mn); m[L] = mn
            p = 2.0 ** (sv[L] - mn); l[L] = l[L] * alpha + p.sum()
            pk = (lambda a, b: int(f16_bits(np.float32(a))) | (int(f16_bits(np.float32(b))) << 16)) if F16 else \
                 (lambda a, b: int(bf16_bits(np.float32(a))) | (int(bf16_bits(np.float32(b))) << 16))
            pa[L] = [pk(p[0], p[1]), 0, pk(p[2], p[3]), 0]
            o[L, :, 0] *= alpha; o[L, :, 1] *= alpha
        if F16:
            addrs = [vs + ((L & 7) + ((L >> 3) & 1) * 8) * RS + (L >> 4) * 16 for L in range(32)]
            for c in range(0, HD // 16, 2):
                r = ldm(stage, [a + c * 16 for a in addrs], True)
                for h in range(2):
                    x0 = [perm3120(int(r[L, 2 * h])) for L in range(32)]; x1 = [perm3120(int(r[L, 2 * h + 1])) for L in range(32)]
                    ov = o[:, 2 * (c + h)].copy(); mma(ov, pa, [cvt(x, False) for x in x0], [cvt(x, False) for x in x1]); o[:, 2 * (c + h)] = ov
                    ov = o[:, 2 * (c + h) + 1].copy(); mma(ov, pa, [cvt(x, True) for x in x0], [cvt(x, True) for x in x1]); o[:, 2 * (c + h) + 1] = ov
        else:
            addrs = [vs + ((L & 7) + ((L >> 3) & 1) * 8) * RS + ((L >> 4) & 1) * 16 for L in range(32)]
            for dt in range(HD // 16):
                r = ldm(stage, [a + dt * 32 for a in addrs], True)
                ov = o[:, 2 * dt].copy(); mma(ov, pa, r[:, 0], r[:, 1]); o[:, 2 * dt] = ov
                ov = o[:, 2 * dt + 1].copy(); mma(ov, pa, r[:, 2], r[:, 3]); o[:, 2 * dt + 1] = ov
        # rows g+8 must stay zero
        assert np.all(o[:, :, 2:] == 0)
    # epilogue
    lq = l.copy()
    for L in range(32): lq[L] = sum(l[(L & ~3) + t] for t in range(4))
    out = np.zeros((G, HD))
    for L in range(32):
        g, t4 = L >> 2, L & 3
        if g >= G: continue
        if F16:
            for c in range(HD // 16):
                out[g, 16 * c + 4 * t4: 16 * c + 4 * t4 + 4] = [o[L, 2 * c, 0], o[L, 2 * c + 1, 0], o[L, 2 * c, 1], o[L, 2 * c + 1, 1]]
        else:
            for nt in range(HD // 8): out[g, 8 * nt + 2 * t4: 8 * nt + 2 * t4 + 2] = o[L, nt, :2]
    for g in range(G): out[g] /= lq[4 * g]
    # reference
    S = (Q @ K[:ke].T) / np.sqrt(HD); P = np.exp(S - S.max(1, keepdims=True)); ref = (P / P.sum(1, keepdims=True)) @ V[:ke]
    err = np.abs(out - ref).max() / np.abs(ref).max()
    return err

for HD in (64, 128):
    for fp8 in (False, True):
        for G, nk in ((8, 1), (4, 17), (5, 33), (2, 47), (1, 16), (8, 80), (3, 15)):
            e = run(HD, fp8, G, nk, 0)
            print(f"HD {HD} {'fp8 ' if fp8 else 'bf16'} G {G} keys {nk}: max rel err {e:.2e} {'ok' if e < 1e-2 else 'FAIL'}")
