"""A Hugging Face directory's tokenizer files <-> tinyllm's byte-level BPE (tinyllm/data/bpe.py).

Reading: tokenizer.json, else GPT-2's vocab.json + merges.txt. Writing:
tokenizer.json + tokenizer_config.json, which transformers' AutoTokenizer loads.
"""
from __future__ import annotations

import json
import os

from ..data.bpe import EOT, BPETokenizer, parse_tokenizer_json, tokenizers_lib
from ..errors import TokenizerError

TOKENIZER_FILES = "tokenizer.json, or vocab.json + merges.txt"


def load_hf_tokenizer(path: str, bos: bool = False) -> BPETokenizer:
    """The tokenizer of a local Hugging Face model directory: tokenizer.json, else GPT-2's vocab.json + merges.txt.

    Nothing is downloaded. A missing or unreadable file is one TokenizerError naming it.
    """
    tj, vj, mt = (os.path.join(path, f) for f in ("tokenizer.json", "vocab.json", "merges.txt"))
    if os.path.isfile(tj):
        lib = tokenizers_lib()
        try:
            with open(tj, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise TokenizerError(f"cannot read {tj}: {getattr(e, 'strerror', None) or e}") from None
        return BPETokenizer(parse_tokenizer_json(lib, text, tj), bos=bos)
    if not os.path.isfile(vj) and not os.path.isfile(mt):
        raise TokenizerError(f"{path} has no tokenizer: it needs {TOKENIZER_FILES} (as saved by transformers)")
    for f, other in ((vj, mt), (mt, vj)):
        if not os.path.isfile(f):
            raise TokenizerError(f"{f} is missing ({os.path.basename(other)} needs it); copy it from the "
                                 f"model's files, or give tokenizer.json instead")
    lib = tokenizers_lib()
    from tokenizers import decoders, models, pre_tokenizers, processors

    try:
        with open(vj, encoding="utf-8") as f:
            vocab = json.load(f)
        tk = lib.Tokenizer(models.BPE.from_file(vj, mt))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise TokenizerError(f"cannot read {vj} / {mt}: {str(e)[:120]}") from None
    except Exception as e:  # the Rust BPE loader: a malformed merges.txt, a merge of unknown tokens
        raise TokenizerError(f"{vj} and {mt} do not form a BPE vocabulary ({str(e)[:120]})") from None
    # what transformers' GPT2TokenizerFast builds from the same two files
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    if EOT in vocab:
        tk.add_special_tokens([EOT])
    return BPETokenizer(tk, bos=bos)


def write_tokenizer_files(tok: BPETokenizer, dest: str, model_max_length: int) -> list:
    """tokenizer.json + tokenizer_config.json in dest (transformers' AutoTokenizer loads them); -> names."""
    conf = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
            "add_prefix_space": False, "clean_up_tokenization_spaces": False}
    if tok.eot_id is not None:
        conf.update(bos_token=EOT, eos_token=EOT, unk_token=EOT)
    files = {"tokenizer.json": tok.to_json(), "tokenizer_config.json": json.dumps(conf, indent=2) + "\n"}
    for name, text in files.items():
        with open(os.path.join(dest, name), "w", encoding="utf-8") as f:
            f.write(text)
    return list(files)
