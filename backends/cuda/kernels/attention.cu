// Causal self-attention around cuBLAS's batched products: the heads are cut out of the fused qkv
// projection (B, T, 3C) straight into the layouts the products want, C-contiguous, transposed where
// a product needs it (batched matmul copies any operand that is not); the scores' scale, causal mask
// and softmax are one pass a row each way; the heads go back side by side in one pass.

#include "common.cuh"

// Layout of head tensors: (B, H, T, hs), or (B, H, hs, T) when transposed.
__device__ __forceinline__ long long head_index(int b, int h, int t, int d, int H, int T, int hs, int transposed) {
    long long bh = (long long)b * H + h;
    return transposed ? (bh * hs + d) * T + t : (bh * T + t) * hs + d;
}

// Up to three head tensors out of src (B, T, row) where part p of a row starts at column p * H * hs
// (an output whose part is -1 is skipped).
template <typename T>
__device__ void split(const T* src, T* d0, T* d1, T* d2, int p0, int p1, int p2, int t0, int t1, int t2,
                      int B, int TT, int H, int hs, long long row) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;  // over (B, T, H, hs): reads in order
    if (i >= (long long)B * TT * H * hs) return;
    int d = i % hs, h = (i / hs) % H, t = (i / ((long long)hs * H)) % TT, b = i / ((long long)hs * H * TT);
    const T* s = src + ((long long)b * TT + t) * row + h * hs + d;
    long long C = (long long)H * hs;
    if (p0 >= 0) d0[head_index(b, h, t, d, H, TT, hs, t0)] = s[p0 * C];
    if (p1 >= 0) d1[head_index(b, h, t, d, H, TT, hs, t1)] = s[p1 * C];
    if (p2 >= 0) d2[head_index(b, h, t, d, H, TT, hs, t2)] = s[p2 * C];
}

// The inverse: dst (B, T, row) part p <- head tensor s_p (skipped where p is -1)
template <typename T>
__device__ void merge(T* dst, const T* s0, const T* s1, const T* s2, int p0, int p1, int p2, int t0, int t1, int t2,
                      int B, int TT, int H, int hs, long long row) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)B * TT * H * hs) return;
    int d = i % hs, h = (i / hs) % H, t = (i / ((long long)hs * H)) % TT, b = i / ((long long)hs * H * TT);
    T* o = dst + ((long long)b * TT + t) * row + h * hs + d;
    long long C = (long long)H * hs;
    if (p0 >= 0) o[p0 * C] = s0[head_index(b, h, t, d, H, TT, hs, t0)];
    if (p1 >= 0) o[p1 * C] = s1[head_index(b, h, t, d, H, TT, hs, t1)];
    if (p2 >= 0) o[p2 * C] = s2[head_index(b, h, t, d, H, TT, hs, t2)];
}

// p = softmax(s * scale) over each row of Tk scores, keys past j <= i + Tk - Tq hidden when causal
template <typename T>
__device__ void att_softmax(const T* s, T* p, int Tq, int Tk, T scale, int causal) {
    long long r = blockIdx.x;
    int i = r % Tq, last = causal ? i + Tk - Tq : Tk - 1;
    const T* sr = s + r * Tk;
    T* pr = p + r * Tk;
    T m = neg_inf((T)0);
    for (int j = threadIdx.x; j <= last; j += blockDim.x) m = max(m, sr[j] * scale);
    m = block_max(m);
    T z = 0;
    for (int j = threadIdx.x; j <= last; j += blockDim.x) z += exp(sr[j] * scale - m);
    T inv = (T)1 / block_sum(z);
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) pr[j] = j <= last ? exp(sr[j] * scale - m) * inv : (T)0;
}

// ds = scale * p (dp - sum(dp p)) over each row (hidden keys have p = 0, so ds = 0 there)
template <typename T>
__device__ void att_softmax_bwd(const T* p, const T* dp, T* ds, int Tk, T scale) {
    long long off = (long long)blockIdx.x * Tk;
    T s = 0;
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) s += dp[off + j] * p[off + j];
    s = block_sum(s);
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) ds[off + j] = scale * p[off + j] * (dp[off + j] - s);
}

extern "C" __global__ void heads_split_f32(const float* src, float* d0, float* d1, float* d2, int p0, int p1, int p2, int t0,
                                           int t1, int t2, int B, int TT, int H, int hs, long long row) {
    split(src, d0, d1, d2, p0, p1, p2, t0, t1, t2, B, TT, H, hs, row);
}
extern "C" __global__ void heads_merge_f32(float* dst, const float* s0, const float* s1, const float* s2, int p0, int p1,
                                           int p2, int t0, int t1, int t2, int B, int TT, int H, int hs,
                                           long long row) {
    merge(dst, s0, s1, s2, p0, p1, p2, t0, t1, t2, B, TT, H, hs, row);
}
extern "C" __global__ void attention_softmax_f32(const float* s, float* p, int Tq, int Tk, float scale, int causal) {
    att_softmax(s, p, Tq, Tk, scale, causal);
}
extern "C" __global__ void attention_softmax_backward_f32(const float* p, const float* dp, float* ds, int Tk, float scale) {
    att_softmax_bwd(p, dp, ds, Tk, scale);
}

extern "C" __global__ void heads_split_f64(const double* src, double* d0, double* d1, double* d2, int p0, int p1, int p2, int t0,
                                           int t1, int t2, int B, int TT, int H, int hs, long long row) {
    split(src, d0, d1, d2, p0, p1, p2, t0, t1, t2, B, TT, H, hs, row);
}
extern "C" __global__ void heads_merge_f64(double* dst, const double* s0, const double* s1, const double* s2, int p0, int p1,
                                           int p2, int t0, int t1, int t2, int B, int TT, int H, int hs,
                                           long long row) {
    merge(dst, s0, s1, s2, p0, p1, p2, t0, t1, t2, B, TT, H, hs, row);
}
extern "C" __global__ void attention_softmax_f64(const double* s, double* p, int Tq, int Tk, double scale, int causal) {
    att_softmax(s, p, Tq, Tk, scale, causal);
}
extern "C" __global__ void attention_softmax_backward_f64(const double* p, const double* dp, double* ds, int Tk, double scale) {
    att_softmax_bwd(p, dp, ds, Tk, scale);
}
