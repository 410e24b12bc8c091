"""Tokenizers, datasets and batching."""
from .batches import Batcher
from .datasets import (DATASETS, DataError, Dataset, arithmetic_dataset, arithmetic_problems, line_dataset,
                       load_dataset, names_dataset, names_text, number_words, read_text_file, text_dataset)
from .tokenizers import BOS, CharTokenizer, TokenizerError, WordTokenizer, tokenizer_from_dict

__all__ = ["Batcher", "DATASETS", "DataError", "Dataset", "arithmetic_dataset", "arithmetic_problems",
           "line_dataset", "load_dataset", "names_dataset", "names_text", "number_words", "read_text_file",
           "text_dataset", "BOS", "CharTokenizer", "WordTokenizer", "TokenizerError", "tokenizer_from_dict"]
