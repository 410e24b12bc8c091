// Layer norm over rows of C: a block a row; w and b are read only where has_w / has_b. The forward
// keeps each row's mean and 1/std (N,) for the
// backward, which recomputes xhat; the weight and bias gradients are column sums over row chunks
// (no atomics, so the same bits every run), finished by one sum over the chunks.
#include "common.cuh"

template <typename T>
__device__ void ln_fwd(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int C, T eps, int has_w,
                       int has_b) {
    const T* xr = x + (long long)blockIdx.x * C;
    T* yr = y + (long long)blockIdx.x * C;
    T s = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) s += xr[j];
    T mu = block_sum(s) / (T)C;
    T v = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) { T d = xr[j] - mu; v += d * d; }
    T r = (T)1 / sqrt(block_sum(v) / (T)C + eps);
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        T h = (xr[j] - mu) * r;
        yr[j] = (has_w ? h * w[j] : h) + (has_b ? b[j] : (T)0);
    }
    if (threadIdx.x == 0) { mean[blockIdx.x] = mu; rstd[blockIdx.x] = r; }
}

// dx = rstd (g w - mean(g w) - xhat mean(g w xhat)), a block a row
template <typename T>
__device__ void ln_bwd_dx(const T* g, const T* x, const T* w, const T* mean, const T* rstd, T* dx, int C,
                          int has_w) {
    long long off = (long long)blockIdx.x * C;
    T mu = mean[blockIdx.x], r = rstd[blockIdx.x], s1 = 0, s2 = 0;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        T d = has_w ? g[off + j] * w[j] : g[off + j];
        s1 += d;
        s2 += d * (x[off + j] - mu) * r;
    }
    T m1 = block_sum(s1) / (T)C, m2 = block_sum(s2) / (T)C;
    for (int j = threadIdx.x; j < C; j += blockDim.x) {
        T d = has_w ? g[off + j] * w[j] : g[off + j];
        dx[off + j] = r * (d - m1 - (x[off + j] - mu) * r * m2);
    }
}

// parts (chunks, 2C): row chunk blockIdx.y's sums of g xhat (columns 0..C-1) and of g (C..2C-1)
template <typename T>
__device__ void ln_bwd_params(const T* g, const T* x, const T* mean, const T* rstd, T* parts, long long N, int C,
                              int rows_per_chunk) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= C) return;
    long long r0 = (long long)blockIdx.y * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
    T sw = 0, sb = 0;
    for (long long i = r0; i < r1; ++i) {
        T gi = g[i * C + j];
        sw += gi * (x[i * C + j] - mean[i]) * rstd[i];
        sb += gi;
    }
    parts[blockIdx.y * 2LL * C + j] = sw;
    parts[blockIdx.y * 2LL * C + C + j] = sb;
}

extern "C" __global__ void layer_norm_forward_f32(const float* x, const float* w, const float* b, float* y, float* mean,
                                                  float* rstd, int C, float eps, int has_w, int has_b) {
    ln_fwd(x, w, b, y, mean, rstd, C, eps, has_w, has_b);
}
extern "C" __global__ void layer_norm_backward_dx_f32(const float* g, const float* x, const float* w, const float* mean,
                                                      const float* rstd, float* dx, int C, int has_w) {
    ln_bwd_dx(g, x, w, mean, rstd, dx, C, has_w);
}
extern "C" __global__ void layer_norm_backward_params_f32(const float* g, const float* x, const float* mean,
                                                          const float* rstd, float* parts, long long N, int C,
                                                          int rows_per_chunk) {
    ln_bwd_params(g, x, mean, rstd, parts, N, C, rows_per_chunk);
}

extern "C" __global__ void layer_norm_forward_f64(const double* x, const double* w, const double* b, double* y, double* mean,
                                                  double* rstd, int C, double eps, int has_w, int has_b) {
    ln_fwd(x, w, b, y, mean, rstd, C, eps, has_w, has_b);
}
extern "C" __global__ void layer_norm_backward_dx_f64(const double* g, const double* x, const double* w, const double* mean,
                                                      const double* rstd, double* dx, int C, int has_w) {
    ln_bwd_dx(g, x, w, mean, rstd, dx, C, has_w);
}
extern "C" __global__ void layer_norm_backward_params_f64(const double* g, const double* x, const double* mean,
                                                          const double* rstd, double* parts, long long N, int C,
                                                          int rows_per_chunk) {
    ln_bwd_params(g, x, mean, rstd, parts, N, C, rows_per_chunk);
}
