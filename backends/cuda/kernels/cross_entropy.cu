// Softmax cross-entropy over rows of V logits without a one-hot: the forward writes each row's loss
// and log-sum-exp (a block a row); the backward writes (softmax - onehot) * scale in one pass.
#include "common.cuh"

template <typename T>
__device__ void xent_fwd(const T* z, const long long* t, T* loss, T* lse, int V) {
    const T* zr = z + (long long)blockIdx.x * V;
    T m = neg_inf((T)0);
    for (int j = threadIdx.x; j < V; j += blockDim.x) m = max(m, zr[j]);
    m = block_max(m);
    T s = 0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += exp(zr[j] - m);
    T l = log(block_sum(s)) + m;
    if (threadIdx.x == 0) {
        lse[blockIdx.x] = l;
        loss[blockIdx.x] = l - zr[t[blockIdx.x]];
    }
}

template <typename T>
__device__ void xent_bwd(const T* z, const long long* t, const T* lse, const T* scale, T* dz, long long N, int V) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N * V) return;
    long long r = i / V;
    int j = (int)(i % V);
    T p = exp(z[i] - lse[r]);
    dz[i] = (p - (j == t[r] ? (T)1 : (T)0)) * scale[r];
}

extern "C" __global__ void cross_entropy_forward_f32(const float* z, const long long* t, float* loss, float* lse,
                                                     int V) { xent_fwd(z, t, loss, lse, V); }
extern "C" __global__ void cross_entropy_forward_f64(const double* z, const long long* t, double* loss,
                                                     double* lse, int V) { xent_fwd(z, t, loss, lse, V); }
extern "C" __global__ void cross_entropy_backward_f32(const float* z, const long long* t, const float* lse,
                                                      const float* scale, float* dz, long long N, int V) {
    xent_bwd(z, t, lse, scale, dz, N, V);
}
extern "C" __global__ void cross_entropy_backward_f64(const double* z, const long long* t, const double* lse,
                                                      const double* scale, double* dz, long long N, int V) {
    xent_bwd(z, t, lse, scale, dz, N, V);
}
