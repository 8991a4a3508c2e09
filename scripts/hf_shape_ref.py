#!/usr/bin/env python3
"""HF transformers reference for a Qwen3 shape with pagellm's dummy weights, on the GPU machine.

pagellm's `--load-format dummy` fills tensor `id` element `i` with util/rng.h's
dummy_weight_value(seed, id, i, center, half_width), rounded to bf16. This script builds the
same model in HF transformers (Qwen3ForCausalLM) directly on the GPU, fills every parameter
with exactly those values (splitmix64 ported to torch int64 arithmetic, checked element for
element against scripts/dummy_weights.py's numpy version on a sample of every tensor), keeps
them bf16-valued but runs the forward in float32 with TF32 off, so the reference has the
CPU backend's semantics (bf16 weights, f32 activations). Nothing is written to safetensors:
an 8B checkpoint from numpy takes minutes, this takes seconds.

It then runs S random prompts of L tokens (teacher-forced: the whole sequence in one forward)
and writes, for tests/gpu/test_cuda_model.c --hf-ref, a little-endian binary file:

    char magic[8] = "PGHFREF1"; int32 S, L, V, K;
    int32 ids[S*L]; int32 argmax[S*L]; float32 top1[S*L], top2[S*L];
    int32 rows[K] (flat s*L+p); float32 logits[K*V]   (full rows, every 16th position)

Usage: python3 scripts/hf_shape_ref.py --shape 8b --out /tmp/ref-8b.bin [--seqs 64 --len 128]
"""
import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dummy_weights  # noqa: E402  (tensor_specs, dummy_values: the numpy reference)

MASK64 = (1 << 64) - 1


def s64(x):
    """A uint64 constant as the int64 with the same bits (torch has no uint64 arithmetic)."""
    x &= MASK64
    return x - (1 << 64) if x >= (1 << 63) else x


C_GOLD, C_M1, C_M2 = s64(0x9E3779B97F4A7C15), s64(0xBF58476D1CE4E5B9), s64(0x94D049BB133111EB)


def srl(x, k):
    """Logical right shift of int64 bits (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def splitmix64(x):
    # int64 add/mul wrap modulo 2^64 on the GPU: the same bits as uint64 arithmetic
    x = x + C_GOLD
    x = (x ^ srl(x, 30)) * C_M1
    x = (x ^ srl(x, 27)) * C_M2
    return x ^ srl(x, 31)


def dummy_torch(seed, tid, begin, end, center, hw, dev):
    """util/rng.h dummy_weight_value for elements [begin, end) as float32 (before bf16 rounding)."""
    i = torch.arange(begin, end, dtype=torch.int64, device=dev)
    r = splitmix64(i ^ s64(seed ^ (tid << 40)))
    u = srl(r, 40).to(torch.float32) * (1.0 / 16777216.0)
    t = (u * 2.0 - 1.0).to(torch.float64)
    return (float(np.float32(center)) + t * float(np.float32(hw))).to(torch.float32)


def fill_params(model, cfg, seed, dev):
    params = dict(model.named_parameters())
    specs = dummy_weights.tensor_specs(cfg)
    seen = set()
    chunk = 1 << 24
    for tid, name, shape, center, hw in specs:
        if name not in params:
            raise SystemExit(f"HF model has no parameter {name}")
        p = params[name]
        if list(p.shape) != list(shape):
            raise SystemExit(f"{name}: HF shape {list(p.shape)} != pagellm {shape}")
        flat = p.data.view(-1)
        n = flat.numel()
        for b in range(0, n, chunk):
            e = min(n, b + chunk)
            flat[b:e] = dummy_torch(seed, tid, b, e, center, hw, dev).to(torch.bfloat16).to(p.dtype)
        # element-for-element check against the numpy port on a sample (start, middle, end)
        for b in (0, max(0, n // 2 - 512), max(0, n - 1024)):
            e = min(n, b + 1024)
            ref = dummy_weights.dummy_values(seed, tid, b, e, center, hw)
            ref16 = np.frombuffer(dummy_weights.encode(ref, "bf16"), dtype="<u2").astype(np.uint32) << 16
            got = flat[b:e].to(torch.float32).cpu().numpy().view(np.uint32)
            if not np.array_equal(got, ref16):
                bad = int(np.argmax(got != ref16))
                raise SystemExit(f"{name}: dummy value {b + bad} differs from scripts/dummy_weights.py")
        seen.add(name)
    missing = [k for k in params if k not in seen and not (k == "lm_head.weight" and cfg.get("tie_word_embeddings"))]
    if missing:
        raise SystemExit(f"HF parameters pagellm does not fill: {missing[:5]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", required=True, help="0.6b, 8b, ... (tests/fixtures/shapes/qwen3-<shape>.config.json)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seqs", type=int, default=64)
    ap.add_argument("--len", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0, help="dummy weight seed (pagellm --seed; tests use 0)")
    ap.add_argument("--prompt-seed", type=int, default=1234)
    ap.add_argument("--batch", type=int, default=8, help="sequences per forward")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "tests/fixtures/shapes", f"qwen3-{args.shape}.config.json")) as f:
        cfg = json.load(f)
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = torch.device("cuda")
    t0 = time.time()
    keys = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "rope_theta",
            "tie_word_embeddings", "attention_bias"]
    hcfg = Qwen3Config(**{k: cfg[k] for k in keys if k in cfg})
    torch.set_default_dtype(torch.float32)
    with torch.device(dev):
        model = Qwen3ForCausalLM(hcfg).eval()
    model = model.float()
    fill_params(model, cfg, args.seed, dev)
    if cfg.get("tie_word_embeddings"):
        model.tie_weights()
    # the rotary frequencies HF derived from the config: theta must be the config's
    hd = cfg["head_dim"]
    want = 1.0 / cfg["rope_theta"] ** (2.0 / hd)
    inv = getattr(getattr(model.model, "rotary_emb", None), "inv_freq", None)
    if inv is None:
        print("hf_shape_ref: warning: no model.model.rotary_emb.inv_freq to check rope_theta against")
    elif abs(float(inv.float().cpu()[1]) - want) > 1e-6 * want:
        raise SystemExit(f"HF rotary inv_freq[1] {float(inv[1])} != 1/theta^(2/hd) {want}: rope_theta not taken")
    torch.cuda.synchronize()
    t_build = time.time() - t0

    S, L, V = args.seqs, args.len, cfg["vocab_size"]
    rng = np.random.default_rng(args.prompt_seed)
    ids = rng.integers(0, 151000, size=(S, L), dtype=np.int64)
    am = np.zeros((S, L), np.int32)
    top1 = np.zeros((S, L), np.float32)
    top2 = np.zeros((S, L), np.float32)
    sample_pos = [p for p in range(L) if p % 16 == 15]
    rows, sample = [], []
    t1 = time.time()
    with torch.no_grad():
        for b in range(0, S, args.batch):
            x = torch.from_numpy(ids[b:b + args.batch]).to(dev)
            lg = model(input_ids=x).logits.float()  # [B, L, V]
            tv, ti = torch.topk(lg, 2, dim=-1)
            am[b:b + args.batch] = ti[..., 0].int().cpu().numpy()
            top1[b:b + args.batch] = tv[..., 0].cpu().numpy()
            top2[b:b + args.batch] = tv[..., 1].cpu().numpy()
            for s in range(lg.shape[0]):
                for p in sample_pos:
                    rows.append((b + s) * L + p)
                sample.append(lg[s, sample_pos].cpu().numpy())
            del lg
    torch.cuda.synchronize()
    t_fwd = time.time() - t1
    with open(args.out, "wb") as f:
        f.write(b"PGHFREF1")
        f.write(struct.pack("<4i", S, L, V, len(rows)))
        f.write(ids.astype("<i4").tobytes())
        f.write(am.astype("<i4").tobytes())
        f.write(top1.astype("<f4").tobytes())
        f.write(top2.astype("<f4").tobytes())
        f.write(np.asarray(rows, dtype="<i4").tobytes())
        for blk in sample:
            f.write(blk.astype("<f4").tobytes())
    nparam = sum(p.numel() for p in model.parameters())
    print(f"hf_shape_ref qwen3-{args.shape}: {nparam / 1e9:.2f}B params (bf16 values, f32 compute), "
          f"{S}x{L} positions, build+fill {t_build:.1f} s, forward {t_fwd:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
