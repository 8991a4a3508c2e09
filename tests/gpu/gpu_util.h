/* gpu_util.h: helpers shared by the GPU tests and benchmarks (tests/gpu): moving float arrays
 * in and out of a backend in its activation / KV dtype, poisoned outputs, error norms.
 * Header-only; test programs only (they abort on a broken invariant). */
#ifndef PAGELLM_TESTS_GPU_UTIL_H
#define PAGELLM_TESTS_GPU_UTIL_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "util/dtype.h"
#include "util/rng.h"

static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "out of memory (%zu bytes)\n", n); abort(); }
    return p;
}

/* fp8 e4m3 (the KV cache's fp8: 4 exponent bits, bias 7, 3 mantissa bits, no infinities,
 * max 448), rounding to nearest even and saturating as the device conversion
 * (__nv_cvt_float2_to_fp8x2 with __NV_SATFINITE) does. */
static inline uint8_t f32_to_fp8e4m3(float x) {
    uint8_t sign = signbit(x) ? 0x80 : 0;
    float a = fabsf(x);
    if (isnan(x)) return 0x7f;
    if (a >= 448.0f) return sign | 0x7e;
    if (a < 0.015625f) return sign | (uint8_t)(int)nearbyintf(a * 512.0f); /* subnormal (8 -> 0x08) */
    int e;
    float fr = frexpf(a, &e);
    int mi = (int)nearbyintf((fr * 2.0f - 1.0f) * 8.0f), E = e + 6;
    if (mi == 8) { mi = 0; E++; }
    if (E > 15 || (E == 15 && mi == 7)) return sign | 0x7e;
    return sign | (uint8_t)(E << 3) | (uint8_t)mi;
}
static inline float fp8e4m3_to_f32(uint8_t v) {
    int E = (v >> 3) & 15, m = v & 7;
    if (E == 15 && m == 7) return NAN;
    float a = E == 0 ? ldexpf((float)m, -9) : ldexpf(1.0f + m / 8.0f, E - 7);
    return (v & 0x80) ? -a : a;
}

/* Host float array -> bytes in dtype dt (f32, bf16 or fp8 e4m3). */
static inline void *host_encode(const float *x, size_t n, DType dt) {
    void *out = xmalloc(n * dtype_size(dt));
    if (dt == DT_F32) memcpy(out, x, n * 4);
    else if (dt == DT_BF16) for (size_t i = 0; i < n; i++) ((uint16_t *)out)[i] = f32_to_bf16(x[i]);
    else if (dt == DT_FP8_E4M3) for (size_t i = 0; i < n; i++) ((uint8_t *)out)[i] = f32_to_fp8e4m3(x[i]);
    else { fprintf(stderr, "host_encode: dtype %s\n", dtype_name(dt)); abort(); }
    return out;
}

static inline void host_decode(float *out, const void *src, size_t n, DType dt) {
    if (dt == DT_F32) memcpy(out, src, n * 4);
    else if (dt == DT_BF16) for (size_t i = 0; i < n; i++) out[i] = bf16_to_f32(((const uint16_t *)src)[i]);
    else if (dt == DT_FP8_E4M3) for (size_t i = 0; i < n; i++) out[i] = fp8e4m3_to_f32(((const uint8_t *)src)[i]);
    else { fprintf(stderr, "host_decode: dtype %s\n", dtype_name(dt)); abort(); }
}

/* Allocates n elements of dt on the backend and copies x there. */
static inline void *dev_upload(Backend *b, const float *x, size_t n, DType dt) {
    void *d = b->ops->alloc(b, n * dtype_size(dt));
    if (!d) { fprintf(stderr, "dev_upload: alloc failed\n"); abort(); }
    void *h = host_encode(x, n, dt);
    b->ops->to_device(b, d, h, n * dtype_size(dt));
    b->ops->sync ? b->ops->sync(b) : (void)0;
    free(h);
    return d;
}

static inline void dev_write(Backend *b, void *d, const float *x, size_t n, DType dt) {
    void *h = host_encode(x, n, dt);
    b->ops->to_device(b, d, h, n * dtype_size(dt));
    if (b->ops->sync) b->ops->sync(b);
    free(h);
}

static inline void dev_download(Backend *b, float *out, const void *d, size_t n, DType dt) {
    void *h = xmalloc(n * dtype_size(dt));
    b->ops->to_host(b, h, d, n * dtype_size(dt));
    host_decode(out, h, n, dt);
    free(h);
}

/* Allocates n elements of dt filled with NaN, so that an element the op forgets stays NaN. */
static inline void *dev_poison(Backend *b, size_t n, DType dt) {
    size_t bytes = n * dtype_size(dt);
    void *d = b->ops->alloc(b, bytes);
    if (!d) { fprintf(stderr, "dev_poison: alloc failed\n"); abort(); }
    void *h = xmalloc(bytes);
    memset(h, 0xff, bytes); /* all-ones: NaN in f32 and bf16 */
    b->ops->to_device(b, d, h, bytes);
    free(h);
    return d;
}

/* ||out - ref|| / ||ref||; NaN/inf anywhere in out returns INFINITY. */
static inline double rel_err(const float *out, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i])) return INFINITY;
        double d = out[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static inline double rel_err_f(const float *out, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i]) || !isfinite(ref[i])) return INFINITY;
        double d = (double)out[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Uniform in [-scale, scale), rounded to bf16 so both backends see the same inputs. */
static inline void fill_rand(Rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = bf16_to_f32(f32_to_bf16((rng_unit(r) * 2.f - 1.f) * scale));
}

/* A host bf16 weight Tensor (data owned by the caller) loaded onto backend b. */
static inline Tensor weight_make(Backend *b, const float *x, int ndim, int64_t d0, int64_t d1,
                                 uint16_t **host_store) {
    size_t n = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    uint16_t *h = (uint16_t *)xmalloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = f32_to_bf16(x[i]);
    Tensor host = {0};
    host.dtype = DT_BF16;
    host.ndim = ndim;
    host.shape[0] = d0;
    host.shape[1] = ndim == 2 ? d1 : 0;
    host.data = h;
    host.name = "test";
    Tensor dev;
    char err[512];
    if (b->ops->weight_load(b, &host, &dev, 0, 0, 0, 0, 0, err) != 0) {
        fprintf(stderr, "weight_load: %s\n", err);
        abort();
    }
    *host_store = h; /* the CPU backend aliases it: keep until the tensor is freed */
    return dev;
}

#endif
