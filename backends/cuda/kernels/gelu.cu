// GELU, tanh form, one pass each way; the backward computes the gate again from x.
#define GELU_C 0.7978845608028654  // sqrt(2 / pi)
#define GELU_A 0.044715

template <typename T> __device__ __forceinline__ T gelu_gate(T x) {
    return (T)0.5 + (T)0.5 * tanh((T)GELU_C * (x + (T)GELU_A * x * x * x));
}

template <typename T> __device__ void gelu_fwd(const T* x, T* y, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * gelu_gate(x[i]);
}

template <typename T> __device__ void gelu_bwd(const T* g, const T* x, T* dx, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T xi = x[i], s = gelu_gate(xi);
    T du = (T)GELU_C * ((T)1 + (T)(3 * GELU_A) * xi * xi);  // d/dx of the tanh's argument
    dx[i] = g[i] * (s + xi * (T)2 * du * s * ((T)1 - s));
}

extern "C" __global__ void gelu_forward_f32(const float* x, float* y, long long n) { gelu_fwd(x, y, n); }
extern "C" __global__ void gelu_forward_f64(const double* x, double* y, long long n) { gelu_fwd(x, y, n); }
extern "C" __global__ void gelu_backward_f32(const float* g, const float* x, float* dx, long long n) {
    gelu_bwd(g, x, dx, n);
}
extern "C" __global__ void gelu_backward_f64(const double* g, const double* x, double* dx, long long n) {
    gelu_bwd(g, x, dx, n);
}
