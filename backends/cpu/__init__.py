"""The CPU device: NumPy (backend.py), its fused kernels (kernels.py, attention.py), numba's
compiled loops (jit/) and MKL's GEMM (mkl.py) where they are installed, under one thread
policy (threads.py).

Nothing here is imported by this file: backends/__init__ imports blas_env.py from this package
before NumPy loads, and a strict or CUDA run loads none of the kernels.
"""
