"""Models from the tutorials up to a GPT, built by name."""
from ..fieldtypes import field_types, type_problem
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
    types = field_types(cls)
    for k, v in fields.items():  # a string "no" for a bool would be truthy
        problem = type_problem(types[k], v)
        if problem:
            raise ValueError(f"{k} {problem}")
    return cls(**fields)


def parameter_count(name: str, c) -> int:
    """The parameters model `name` with config c will have, from the config alone (to the nearest bias
    and norm gain): checked against the memory before anything is allocated."""
    if name == "gpt":
        C = c.n_embd
        head = 0 if c.tie_weights else C * c.vocab_size
        return 12 * c.n_layer * C * C + 13 * c.n_layer * C + (c.vocab_size + c.block_size) * C + head + 2 * C
    if name == "mlp":
        return c.vocab_size * c.n_embd + (c.block_size * c.n_embd + 1) * c.n_hidden + (c.n_hidden + 1) * c.vocab_size
    return c.vocab_size * c.vocab_size


def parameter_range(name: str, c) -> tuple:
    """(least, most) parameters model `name` with config c can have: a GPT's biases and norm gains
    (13 per block and width, 2 for the final norm) may be absent; the other models' counts are exact."""
    most = parameter_count(name, c)
    return (most - 13 * c.n_layer * c.n_embd - 2 * c.n_embd if name == "gpt" else most), most


def build_model(name: str, config=None, device=None, seed: int = 0, **fields):
    """build_model("gpt", vocab_size=65, n_layer=4) or build_model("gpt", GPTConfig(...))."""
    if config is None:
        config = config_for(name, **fields)
    return MODELS[name][0](config, device=device, seed=seed)


__all__ = ["GPT", "GPTConfig", "CharMLP", "MLPConfig", "BigramLM", "BigramConfig", "BigramCounts",
           "MODELS", "build_model", "config_for", "parameter_count", "parameter_range"]
