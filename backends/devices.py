"""The device spellings, written down once: get_backend's parser (select.py), `tinyllm --device`'s
help, the tutorials' --device flag and tinyllm.device's docstring all read this table."""
from __future__ import annotations

import re

FORMS = (  # (spelling, what it means); N is a number
    ("auto", "a usable GPU (CuPy's CUDA, then torch's CUDA or ROCm, then torch's MPS), else cpu, silently"),
    ("cpu", "NumPy on the CPU"),
    ("cuda", "the first GPU (= cuda:0); one that cannot be used falls back to cpu with a warning"),
    ("cuda:N", "GPU number N"),
    ("strict", "array-api-strict: NumPy that allows only the Array API standard (slow; proves the code "
               "uses nothing else)"),
    ("strict:N", "array-api-strict's device N (1 or 2), whose arrays refuse to mix with another device's"),
    ("torch", "PyTorch's tensors on the CPU, through array-api-compat (the torch extra)"),
    ("torch:cpu", "the same as torch"),
    ("torch:cuda", "PyTorch's first CUDA or ROCm GPU (= torch:cuda:0); one torch cannot use falls back to cpu "
                   "with a warning"),
    ("torch:cuda:N", "PyTorch's CUDA or ROCm GPU number N"),
    ("torch:mps", "PyTorch on an Apple-silicon GPU (no float64 there)"),
)
ALIASES = {"gpu": "cuda"}  # accepted, not shown
SAME = {"torch:cpu": "torch"}  # two spellings of one device
STRICT_DEVICES = 3  # strict (= strict:0), strict:1, strict:2: array-api-strict's CPU_DEVICE, device1, device2


def names(quote: str = "") -> str:
    """'auto, cpu, cuda, cuda:N, strict, strict:N, torch, ... or torch:mps' (each in `quote` marks)."""
    words = [f"{quote}{form}{quote}" for form, _ in FORMS]
    return ", ".join(words[:-1]) + " or " + words[-1]


def meanings() -> str:
    """'auto: a usable GPU, else cpu, silently; cpu: ...': every form with its meaning, for a --device help."""
    return "; ".join(f"{form}: {meaning}" for form, meaning in FORMS)


def parse(spec: str) -> "tuple[str, int] | None":
    """(kind, index) for a spelling in FORMS (any case, spaces around it ignored), else None:
    "cuda:1" -> ("cuda", 1), "strict" -> ("strict", 0), "auto" -> ("auto", 0),
    "torch:cuda:1" -> ("torch:cuda", 1), "torch:cpu" -> ("torch", 0)."""
    m = re.fullmatch(r"([a-z]+(?::[a-z]+)?)(?::(\d+))?", spec.strip().lower())
    if m is None:
        return None
    kind = ALIASES.get(m.group(1), m.group(1))
    form = kind if m.group(2) is None else f"{kind}:N"
    if form not in dict(FORMS):
        return None
    return SAME.get(kind, kind), int(m.group(2) or 0)
