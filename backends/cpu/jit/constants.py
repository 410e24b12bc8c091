"""GELU's tanh-form constants, shared by the NumPy passes (backends/cpu/passes.py) and the
compiled loops (gelu.py): GELU(x) = x (1 + tanh(c (x + a x^3))) / 2."""
import math

GELU_C = math.sqrt(2.0 / math.pi)
GELU_A = 0.044715
