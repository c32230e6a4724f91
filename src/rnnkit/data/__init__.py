"""Data: tokenizers, built-in corpora, batching."""

from .batching import IGNORE_INDEX, StreamBatches, WindowBatches
from .corpora import DATASETS, DEFAULT_DATASET, TextSplits, load_corpus, load_splits, split_corpus
from .tokenizers import Tokenizer, build_tokenizer, count_chars

__all__ = [
    "DATASETS", "DEFAULT_DATASET", "IGNORE_INDEX", "StreamBatches", "TextSplits", "Tokenizer",
    "WindowBatches", "build_tokenizer", "count_chars", "load_corpus", "load_splits", "split_corpus",
]
