// One Adam / AdamW update in place over the optimizer's flat buffers (p, g, m, v), one pass, with
// the gradient clip's factor applied as the gradient is read: min(1, max_norm / (norm + 1e-6)),
// norm a device scalar (no host read), or 1 when max_norm <= 0.
template <typename T>
__device__ void adam_update(T* p, const T* g, T* m, T* v, long long n, const T* norm, T max_norm, T b1, T b2,
                            T step_scale, T inv_sqrt_bc2, T eps, T decay, T l2) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T clip = (max_norm > (T)0 && norm[0] > max_norm) ? max_norm / (norm[0] + (T)1e-6) : (T)1;
    T gi = g[i] * clip + l2 * p[i];
    T mi = m[i] * b1 + gi * ((T)1 - b1);
    T vi = v[i] * b2 + gi * gi * ((T)1 - b2);
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_scale * mi / (sqrt(vi) * inv_sqrt_bc2 + eps);
}

extern "C" __global__ void adam_f32(float* p, const float* g, float* m, float* v, long long n, const float* norm,
                                    float max_norm, float b1, float b2, float step_scale, float inv_sqrt_bc2,
                                    float eps, float decay, float l2) {
    adam_update(p, g, m, v, n, norm, max_norm, b1, b2, step_scale, inv_sqrt_bc2, eps, decay, l2);
}
extern "C" __global__ void adam_f64(double* p, const double* g, double* m, double* v, long long n,
                                    const double* norm, double max_norm, double b1, double b2, double step_scale,
                                    double inv_sqrt_bc2, double eps, double decay, double l2) {
    adam_update(p, g, m, v, n, norm, max_norm, b1, b2, step_scale, inv_sqrt_bc2, eps, decay, l2);
}
