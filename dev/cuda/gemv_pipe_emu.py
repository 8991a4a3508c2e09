"""gemv_pipe_emu.py: emulates gemv4_kernel's index math (src/backend/cuda/gemv_pipe.cu): persistent
blocks, threads, steps per group, segments, the reduction and the store; every output must be
written exactly once and equal x @ W^T. Checks arithmetic only, not the hardware. Run:
python3 dev/cuda/gemv_pipe_emu.py"""
import numpy as np
NB = 4
def g4_threads(K):
    K8 = K // 8
    for bd in (256, 128, 64, 32):
        if K8 % (2 * bd) == 0: return bd
    return 0
def run(rows, segN, K, res):
    rng = np.random.default_rng(0)
    W = [rng.standard_normal((n, K)).astype(np.float32) for n in segN]
    x = rng.standard_normal((rows, K)).astype(np.float32)
    start = np.concatenate([[0], np.cumsum(segN)])
    out = [np.full((rows, n), np.nan) for n in segN]
    bd = g4_threads(K); K8 = K // 8; spg = K8 // (2 * bd)
    ngroups = (start[-1] + NB - 1) // NB
    grid = min(ngroups, res)
    def seg_of(g):
        s = 0
        for i in range(1, len(segN)):
            if g >= start[i]: s = i
        return s
    for b in range(grid):
        my = (ngroups - 1 - b) // grid + 1 if b < ngroups else 0
        steps = my * spg
        acc = np.zeros((bd, rows, NB))
        for it in range(steps):
            g0 = (b + (it // spg) * grid) * NB
            s = seg_of(g0); n0 = g0 - start[s]; N = segN[s]
            for t in range(bd):
                c = (it % spg) * 2 * bd + t
                for j in range(NB):
                    n = min(n0 + j, N - 1)
                    wa = W[s][n, c*8:(c+1)*8]; wb = W[s][n, (c+bd)*8:(c+bd+1)*8]
                    for r in range(rows):
                        acc[t, r, j] += wa @ x[r, c*8:(c+1)*8] + wb @ x[r, (c+bd)*8:(c+bd+1)*8]
            if it % spg == spg - 1:
                tot = acc.sum(axis=0)
                for tid in range(rows * NB):
                    r, j = tid // NB, tid % NB
                    n = g0 - start[s] + j
                    if n < N:
                        assert np.isnan(out[s][r, n]), "written twice"
                        out[s][r, n] = tot[r, j]
                acc[:] = 0
    err = max(np.abs(out[i] - x @ W[i].T).max() for i in range(len(segN)))
    return err
for rows, segN, K, res in [(1, [64, 16, 16], 512, 7), (2, [40, 12], 1024, 5), (3, [37], 1536, 4), (1, [8, 8, 10], 2560, 3), (1, [20], 4096, 64)]:
    assert all(n % NB == 0 for n in segN[:-1])
    print(rows, segN, K, res, "bd", g4_threads(K), "max err %.2e" % run(rows, segN, K, res))
