"""Task models: LanguageModel, ..."""

from .word2vec import Word2Vec

__all__ = ["Word2Vec"]
