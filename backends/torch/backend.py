"""PyTorch's tensors through array-api-compat's torch namespace: torch's CPU, CUDA/ROCm GPUs
(torch.cuda) and Apple's MPS. Imported only when a torch device is asked for.

tinyllm's own backward computes every gradient: no tensor here ever requires grad, so torch's
autograd records nothing. What torch's namespace lacks is mended here, on this floor:
- uint16/uint32/uint64 tensors have almost no operators in torch (no take, +, >>, comparisons), so
  torch holds those types one signed size wider (dtype("uint16") is int32, "uint32" and "uint64"
  int64; token streams arrive so), and tinyllm.random's words are int64 (word_dtype);
- no float64 on MPS: asking for it there is one DeviceError line.
"""
from __future__ import annotations

import numpy as np
import array_api_compat.torch as xp_torch
import torch

from ..base import Backend, sorted_segment_add
from ..errors import DeviceError

_WIDER = {"uint16": "int32", "uint32": "int64", "uint64": "int64"}  # torch's uint16+ lack operators
NO_FLOAT64 = ("torch:mps has no float64 (Apple's GPUs lack it); use float32 there, or --device cpu or "
              "torch for float64 work such as gradient checks")


class TorchBackend(Backend):
    kind = "torch"
    word_dtype = "int64"

    def __init__(self, name: str = "torch"):
        """name: "torch" (the CPU), "torch:cuda:N" or "torch:mps" (backends/torch/probe.py's names)."""
        where = "cpu" if name == "torch" else name.split(":", 1)[1]
        super().__init__(name, xp_torch, device=torch.device(where))

    def dtype(self, d):
        """xp's dtype for a name (uint16+ one signed size wider); float64 on MPS is a DeviceError."""
        out = super().dtype(_WIDER.get(d, d) if isinstance(d, str) else d)
        if out == torch.float64 and self.device.type == "mps":
            raise DeviceError(NO_FLOAT64)
        return out

    def from_host(self, a, dtype=None):
        a = np.asarray(a)
        if a.dtype == np.uint64 and a.size and int(a.max()) >= 2**63:  # int64 would wrap it
            raise ValueError("torch holds uint64 data as int64, and this array has values of 2**63 or more")
        return super().from_host(a, dtype)

    def _from_numpy(self, a):
        if a.dtype.name in _WIDER:
            a = a.astype(_WIDER[a.dtype.name])
        elif a.dtype == np.float64 and self.device.type == "mps":
            raise DeviceError(NO_FLOAT64)
        # a copy in native byte order: torch shares a NumPy array's memory, which may be another backend's
        host = np.array(a, dtype=a.dtype.newbyteorder("="), copy=True, order="C")
        return torch.from_numpy(host).to(self.device)

    def _to_numpy(self, x):
        if isinstance(x, np.ndarray):  # already on the host
            return np.array(x, copy=True)
        return np.array(x.detach().cpu().numpy(), copy=True)  # on the CPU, .numpy() shares the tensor's memory

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def is_array(self, x) -> bool:
        return (isinstance(x, torch.Tensor) and x.device.type == self.device.type
                and (x.device.index or 0) == (self.device.index or 0))

    def scatter_add(self, target, indices, values):
        """In place. CPU: index_put_'s accumulation runs in index order (deterministic); CUDA's adds with
        atomics (last bits vary run to run), so there the sorted segment sums serve."""
        if indices.shape[0] == 0:
            return target
        if self.device.type == "cuda":
            return sorted_segment_add(self.xp, target, indices, values)
        rows = values.reshape((values.shape[0],) + tuple(target.shape[1:]))
        if self.device.type == "mps":  # untested here: MPS's index_add_ (its order is torch's)
            return target.index_add_(0, indices, rows)
        return target.index_put_((indices,), rows, accumulate=True)
