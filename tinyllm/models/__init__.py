"""Models from the tutorials up to a GPT, built by name."""
from .bigram import BigramConfig, BigramCounts, BigramLM
from .gpt import GPT, GPTConfig
from .mlp import CharMLP, MLPConfig

MODELS = {"gpt": (GPT, GPTConfig), "mlp": (CharMLP, MLPConfig), "bigram": (BigramLM, BigramConfig)}


def config_for(name: str, **fields):
    """The config dataclass of model `name`, with fields set (unknown fields are an error)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cls = MODELS[name][1]
    known = set(cls.__dataclass_fields__)
    extra = sorted(set(fields) - known)
    if extra:
        raise ValueError(f"model {name!r} has no setting {', '.join(extra)}; it takes {', '.join(sorted(known))}")
    return cls(**fields)


def build_model(name: str, config=None, device=None, seed: int = 0, **fields):
    """build_model("gpt", vocab_size=65, n_layer=4) or build_model("gpt", GPTConfig(...))."""
    if config is None:
        config = config_for(name, **fields)
    return MODELS[name][0](config, device=device, seed=seed)


__all__ = ["GPT", "GPTConfig", "CharMLP", "MLPConfig", "BigramLM", "BigramConfig", "BigramCounts",
           "MODELS", "build_model", "config_for"]
