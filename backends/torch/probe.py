"""Whether torch can reach a device: torch:cuda:N (NVIDIA CUDA or AMD ROCm, both behind torch.cuda),
torch:mps (Apple silicon) and torch's CPU. status() names the cause and its fix; auto_kinds() says
which GPUs `--device auto` may try without importing torch (1-2 s) where none can be there."""
from __future__ import annotations

import importlib.util
import platform
import re
import sys
from pathlib import Path

INSTALL = 'pip install "tinyllm[torch]"'
GET_BUILD = "install torch's CUDA or ROCm build (pytorch.org/get-started)"


def installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def backend_name(kind: str, index: int) -> str:
    """The backend's name for a parsed spelling: "torch", "torch:mps" or "torch:cuda:N"."""
    return f"torch:cuda:{index}" if kind == "torch:cuda" else kind


def _build_says(field: str) -> bool:
    """Whether torch/version.py, read as text, gives `field` (cuda, hip) a version rather than None."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    path = Path(list(spec.submodule_search_locations)[0]) / "version.py"
    try:
        text = path.read_text()
    except OSError:
        return True  # cannot tell: let torch itself answer
    m = re.search(rf"^{field}\b[^=\n]*=\s*(.+)$", text, re.M)
    return m is not None and m.group(1).strip() != "None"


def auto_kinds() -> list:
    """The torch GPUs `--device auto` tries, in order: CUDA/ROCm if torch is built for one, then MPS
    on macOS with Apple silicon. Empty for torch's CPU build: auto never imports torch for nothing."""
    kinds = []
    if _build_says("cuda") or _build_says("hip"):
        kinds.append("torch:cuda")
    if sys.platform == "darwin" and platform.machine() == "arm64" and installed():
        kinds.append("torch:mps")
    return kinds


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def _cuda_problem(torch, index: int) -> tuple:
    gpu = "ROCm" if getattr(torch.version, "hip", None) else "CUDA"
    if torch.version.cuda is None and not getattr(torch.version, "hip", None):
        return f"torch {torch.__version__} is a CPU-only build; {GET_BUILD}", 0
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} finds no usable {gpu} device (no GPU, or no driver for it)", 0
    count = torch.cuda.device_count()
    if index >= count:
        return f"there is no torch:cuda:{index}", count
    return None, count


def _mps_problem(torch) -> "str | None":
    if not torch.backends.mps.is_built():
        return f"torch {torch.__version__} was built without MPS (Apple silicon's GPU, on macOS)"
    if not torch.backends.mps.is_available():
        return "torch finds no MPS device (MPS needs macOS 12.3 or later on Apple silicon)"
    return None


def status(kind: str, index: int = 0, run_probe: bool = True) -> tuple:
    """(problem or None, GPU count or None) for "torch", "torch:cuda" (index N) or "torch:mps"."""
    try:
        import torch
    except ImportError:
        return f"torch is not installed; {INSTALL}", None
    except Exception as e:  # a broken install
        return f"torch failed to import ({first_line(e)}); reinstall it: {INSTALL}", None
    if kind == "torch":
        return None, None
    if kind == "torch:mps":
        problem, count = _mps_problem(torch), None
    else:
        problem, count = _cuda_problem(torch, index)
    if problem is None and run_probe:
        problem = probe(torch, backend_name(kind, index))
    return problem, count


def probe(torch, name: str) -> "str | None":
    """Run what training needs once on the device (an allocation, a matmul, a read back); the cause if it fails."""
    device = name.split(":", 1)[1]
    try:
        a = torch.arange(6, dtype=torch.float32, device=device).reshape(2, 3)
        got = (a @ a.T).cpu().tolist()  # [[5, 14], [14, 50]]
    except Exception as e:
        return f"a test run on {name} failed ({type(e).__name__}: {first_line(e)})"
    return None if got == [[5.0, 14.0], [14.0, 50.0]] else f"a test run on {name} gave a wrong result {got}"
