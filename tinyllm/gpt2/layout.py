"""Hugging Face's GPT-2 layout (transformers' GPT2LMHeadModel) <-> tinyllm's GPT: config keys and tensor names.

tinyllm's GPT is GPT-2's architecture, and GPT-2's Conv1D stores its weights
(in, out) as our Linear does, so the tensors map one to one by name, untransposed:

    transformer.wte.weight            wte.weight           (V, C)
    transformer.wpe.weight            wpe.weight           (T, C)
    transformer.h.{i}.ln_1.*          blocks.{i}.ln1.*     (C,)
    transformer.h.{i}.attn.c_attn.*   blocks.{i}.attn.qkv.*   (C, 3C): q, k, v side by side
    transformer.h.{i}.attn.c_proj.*   blocks.{i}.attn.proj.*  (C, C)
    transformer.h.{i}.ln_2.*          blocks.{i}.ln2.*
    transformer.h.{i}.mlp.c_fc.*      blocks.{i}.mlp.fc.*     (C, 4C)
    transformer.h.{i}.mlp.c_proj.*    blocks.{i}.mlp.proj.*   (4C, C)
    transformer.ln_f.*                ln_f.*
    lm_head.weight                    lm_head.weight       (V, C) there, (C, V) here: the one transpose

Only an untied head has an lm_head tensor (a tied one is wte, as transformers'
save_pretrained writes it). Biases and norm gains a tinyllm model lacks
(bias=False, norm_affine=False) export as zeros and ones, which is what the
missing parameter means. RMS norm, ReLU or no final norm have no GPT-2
equivalent and are refused. Reading, a `transformer.` prefix is optional (the
original gpt2 files have none) and the attn.bias / attn.masked_bias buffers
that older files carry are skipped.

Everything here works on the model's backend (`xp`) and host arrays from
backends.io: no torch is needed either way.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import HFFormatError
from ..models.gpt import GPT, GPTConfig

# the GELU in transformers that is tinyllm's tanh form (plain "gelu" is the erf form: a different function)
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
LN_EPS = 1e-5  # tinyllm's LayerNorm, and GPT-2's layer_norm_epsilon
BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers older files carry


@dataclass(frozen=True)
class Entry:
    hf: str            # name in GPT2LMHeadModel's state dict
    ours: str          # name in tinyllm's GPT
    shape: tuple       # shape in the Hugging Face file
    fill: float | None = None    # value that stands for the parameter when the model has none
    transpose: bool = False      # stored transposed there (the untied head)


def layout(c: GPTConfig) -> list:
    """Every tensor of a GPT2LMHeadModel file for config c, in state-dict order."""
    C, V, T = c.n_embd, c.vocab_size, c.block_size
    out = [Entry("transformer.wte.weight", "wte.weight", (V, C)),
           Entry("transformer.wpe.weight", "wpe.weight", (T, C))]

    def norm(hf, ours):
        out.extend([Entry(f"{hf}.weight", f"{ours}.weight", (C,), 1.0), Entry(f"{hf}.bias", f"{ours}.bias", (C,), 0.0)])

    def linear(hf, ours, n_in, n_out):
        out.extend([Entry(f"{hf}.weight", f"{ours}.weight", (n_in, n_out)),
                    Entry(f"{hf}.bias", f"{ours}.bias", (n_out,), 0.0)])

    for i in range(c.n_layer):
        h, b = f"transformer.h.{i}", f"blocks.{i}"
        norm(f"{h}.ln_1", f"{b}.ln1")
        linear(f"{h}.attn.c_attn", f"{b}.attn.qkv", C, 3 * C)
        linear(f"{h}.attn.c_proj", f"{b}.attn.proj", C, C)
        norm(f"{h}.ln_2", f"{b}.ln2")
        linear(f"{h}.mlp.c_fc", f"{b}.mlp.fc", C, 4 * C)
        linear(f"{h}.mlp.c_proj", f"{b}.mlp.proj", 4 * C, C)
    norm("transformer.ln_f", "ln_f")
    if not c.tie_weights:
        out.append(Entry("lm_head.weight", "lm_head.weight", (V, C), transpose=True))
    return out


# -- tinyllm -> GPT-2 ---------------------------------------------------------------------------

def check_exportable(c: GPTConfig) -> None:
    """HFFormatError for a config GPT-2's layout cannot represent."""
    why = []
    if c.norm != "layer":
        why.append(f"norm={c.norm!r} (GPT-2 has LayerNorm)")
    if not c.final_norm:
        why.append("final_norm=False (GPT-2 has a final LayerNorm)")
    if c.activation != "gelu":
        why.append(f"activation={c.activation!r} (GPT-2 has GELU)")
    if why:
        raise HFFormatError(f"this model cannot be exported to GPT-2's layout: {'; '.join(why)}; "
                            f"train with the GPT-2 settings to export")


def gpt2_config(c: GPTConfig, bos_id: int | None = None) -> dict:
    """config.json for GPT2LMHeadModel (the keys transformers' save_pretrained writes for GPT-2)."""
    check_exportable(c)
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": c.vocab_size, "n_positions": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer,
        "n_head": c.n_head, "n_inner": None, "activation_function": "gelu_new",
        # tinyllm drops out embeddings and residual branches, never attention probabilities
        "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": 0.0,
        "layer_norm_epsilon": LN_EPS, "initializer_range": 0.02,
        "summary_type": "cls_index", "summary_use_proj": True, "summary_activation": None,
        "summary_proj_to_labels": True, "summary_first_dropout": 0.1,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "add_cross_attention": False, "use_cache": True, "tie_word_embeddings": c.tie_weights,
        "bos_token_id": bos_id, "eos_token_id": bos_id, "pad_token_id": None,
    }


def gpt2_tensors(model: GPT) -> dict:
    """{GPT2LMHeadModel name: host float32 array} for model (zeros / ones where it has no bias / gain)."""
    check_exportable(model.config)
    be = model.backend
    xp = be.xp
    params = dict(model.named_parameters())
    out = {}
    for e in layout(model.config):
        p = params.get(e.ours)
        if p is None:
            if e.fill is None:
                raise HFFormatError(f"the model has no {e.ours!r} tensor, which GPT-2's layout needs")
            a = xp.full(e.shape, e.fill, dtype=xp.float32)
        else:
            a = xp.astype(p.data, xp.float32)
            if e.transpose:
                a = xp.permute_dims(a, (1, 0))
        out[e.hf] = be.to_host(a)
    return out


# -- GPT-2 -> tinyllm ---------------------------------------------------------------------------

def _get(d: dict, key: str, where: str, default=None, types=(int,)):
    v = d.get(key, default)
    if not isinstance(v, types) or isinstance(v, bool) and bool not in types:
        raise HFFormatError(f"{where}: {key} is {v!r}, expected {'/'.join(t.__name__ for t in types)}")
    return v


def config_from_gpt2(d: dict, where: str = "config.json", block_size: int | None = None,
                     dropout: float | None = None) -> GPTConfig:
    """The GPTConfig of a GPT-2 config.json. block_size crops the position table (<= n_positions);
    dropout defaults to the config's resid_pdrop."""
    if not isinstance(d, dict):
        raise HFFormatError(f"{where} is not a JSON object")
    mt = d.get("model_type", "gpt2")
    if mt != "gpt2":
        raise HFFormatError(f"{where} describes a {mt!r} model; tinyllm reads GPT-2 models only (model_type 'gpt2')")
    n_pos = _get(d, "n_positions", where, d.get("n_ctx", 1024))
    C = _get(d, "n_embd", where, 768)
    act = d.get("activation_function", "gelu_new")
    unsupported = {
        "activation_function": (act not in TANH_GELUS, f"{act!r} (tinyllm's GELU is the tanh form: "
                                                       f"{', '.join(TANH_GELUS)})"),
        "n_inner": (d.get("n_inner") not in (None, 4 * C), f"{d.get('n_inner')!r} (tinyllm's MLP is 4 x n_embd)"),
        "layer_norm_epsilon": (not isinstance(d.get("layer_norm_epsilon", LN_EPS), (int, float))
                               or abs(d.get("layer_norm_epsilon", LN_EPS) - LN_EPS) > 1e-12,
                               f"{d.get('layer_norm_epsilon')!r} (tinyllm's LayerNorm uses {LN_EPS})"),
        "scale_attn_weights": (d.get("scale_attn_weights", True) is not True, "false"),
        "scale_attn_by_inverse_layer_idx": (d.get("scale_attn_by_inverse_layer_idx", False) is not False, "true"),
        "add_cross_attention": (d.get("add_cross_attention", False) is not False, "true"),
    }
    for key, (bad, shown) in unsupported.items():
        if bad:
            raise HFFormatError(f"{where}: {key} {shown} is not supported by tinyllm's GPT")
    if block_size is not None and not 0 < block_size <= n_pos:
        raise HFFormatError(f"--block-size {block_size} does not fit this model: {where} has n_positions {n_pos}; "
                            f"use --block-size {n_pos} or less")
    if dropout is None:
        dropout = d.get("resid_pdrop", 0.0)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool):
            raise HFFormatError(f"{where}: resid_pdrop is {dropout!r}, expected a number")
    tie = d.get("tie_word_embeddings", True)
    if not isinstance(tie, bool):
        raise HFFormatError(f"{where}: tie_word_embeddings is {tie!r}, expected true or false")
    cfg = GPTConfig(vocab_size=_get(d, "vocab_size", where, 50257), block_size=block_size or n_pos,
                    n_layer=_get(d, "n_layer", where, 12), n_head=_get(d, "n_head", where, 12), n_embd=C,
                    dropout=float(dropout), bias=True, tie_weights=tie)
    try:
        return cfg.validate()
    except ValueError as e:
        raise HFFormatError(f"{where}: {e}") from None


def _file_layers(names) -> set:
    """The block numbers i of the names "[transformer.]h.{i}.*" in a GPT-2 file."""
    out = set()
    for k in names:
        parts = k.removeprefix("transformer.").split(".")
        if len(parts) > 2 and parts[0] == "h" and parts[1].isdigit():
            out.add(int(parts[1]))
    return out


def match_gpt2_tensors(c: GPTConfig, tensors: dict, where: str = "model.safetensors",
                       n_positions: int | None = None) -> list:
    """[(Entry, host array)] of a GPT-2 state dict for config c, checked without building a model: a missing,
    extra or mis-shaped tensor is one HFFormatError. n_positions: the file's position table length when
    c.block_size crops it. The file's block count is compared first, so a config.json whose n_layer is
    far from the file's costs no table of n_layer entries."""
    layers = _file_layers(k for k in tensors if not k.endswith(BUFFERS))
    if len(layers) != c.n_layer:
        raise HFFormatError(f"{where} holds {len(layers)} blocks (h.0, h.1, ...), config.json says n_layer "
                            f"{c.n_layer}; the files come from different models")
    entries = layout(c)
    names = {}  # our key in the file -> the name found there
    for k in tensors:
        if k.endswith(BUFFERS):
            continue
        full = k if k.startswith(("transformer.", "lm_head.")) else f"transformer.{k}"
        if full in names:
            raise HFFormatError(f"{where} holds {k!r} twice (with and without the 'transformer.' prefix)")
        names[full] = k
    if c.tie_weights:
        names.pop("lm_head.weight", None)  # some files repeat the tied head; wte is the one used
    want = {e.hf: e for e in entries}
    missing = [e.hf for e in entries if e.hf not in names]
    if missing:
        raise HFFormatError(f"{where} lacks tensor {missing[0]!r}" + (f" (and {len(missing) - 1} more)"
                                                                      if len(missing) > 1 else "")
                            + "; it does not match config.json")
    extra = sorted(set(names) - set(want))
    if extra:
        raise HFFormatError(f"{where} has tensor {names[extra[0]]!r} that a GPT-2 LM does not"
                            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
                            + "; give a GPT2LMHeadModel checkpoint")
    out = []
    for e in entries:
        a = tensors[names[e.hf]]
        shape = (n_positions, e.shape[1]) if e.ours == "wpe.weight" and n_positions is not None else e.shape
        if tuple(a.shape) != shape:
            raise HFFormatError(f"{where}: tensor {names[e.hf]!r} has shape {tuple(a.shape)}, config.json "
                                f"implies {shape}")
        out.append((e, a))
    return out


def load_gpt2_tensors(model: GPT, tensors: dict, where: str = "model.safetensors",
                      n_positions: int | None = None) -> None:
    """Copy a GPT-2 state dict (host arrays) into model. n_positions: the file's position table length
    when the model's block_size crops it. HFFormatError names a missing, extra or mis-shaped tensor, or
    one holding nan or inf (such weights would only ever sample one token)."""
    c = model.config
    be = model.backend
    xp = be.xp
    state = {}  # GPT-2's name -> (our name, device array)
    for e, a in match_gpt2_tensors(c, tensors, where, n_positions):
        d = be.from_host(a, "float32")
        if e.transpose:
            d = xp.permute_dims(d, (1, 0))
        if e.ours == "wpe.weight":
            d = d[:c.block_size, :]  # (T, C): a shorter context keeps the first positions
        state[e.hf] = (e.ours, d)
    finite = be.to_host(xp.stack([xp.all(xp.isfinite(d)) for _, d in state.values()])).tolist()  # one read
    bad = [k for k, ok in zip(state, finite) if not ok]
    if bad:
        raise HFFormatError(f"{where}: tensor {bad[0]!r} holds nan or inf" + (f" (and {len(bad) - 1} more)"
                                                                           if len(bad) > 1 else "")
                            + "; these weights are damaged: save them again from a good copy")
    model.load_state_dict(dict(state.values()))
