"""GPT-2 interop: a tinyllm GPT <-> a local Hugging Face GPT-2 directory, in one room.

    from tinyllm.gpt2 import export_model, load_pretrained
    export_model(model, tokenizer, "gpt2-out")        # config.json, model.safetensors (+ tokenizer.json ...)
    model, tok = load_pretrained("gpt2-out", device="cpu")

layout.py          GPT-2's config keys and tensor names <-> tinyllm's GPT
hf_dir.py          the directory on disk: export, load (checked against the memory first)
tokenizer_files.py its tokenizer files <-> the byte-level BPE (tinyllm/data/bpe.py)

A run starting from such a directory (--init-from) asks tinyllm/train/init_from.py,
which calls load_pretrained_tokenizer and load_pretrained_model here.
"""
from ..errors import ExportError, HFFormatError
from .hf_dir import (export_model, load_pretrained, load_pretrained_model, load_pretrained_tokenizer,
                     read_gpt2_config)
from .layout import config_from_gpt2, gpt2_config, gpt2_tensors
from .tokenizer_files import load_hf_tokenizer, write_tokenizer_files

__all__ = ["export_model", "load_pretrained", "load_pretrained_model", "load_pretrained_tokenizer",
           "read_gpt2_config", "config_from_gpt2", "gpt2_config", "gpt2_tensors", "load_hf_tokenizer",
           "write_tokenizer_files", "ExportError", "HFFormatError"]
