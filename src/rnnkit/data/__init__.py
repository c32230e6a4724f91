"""Data: tokenizers, built-in corpora, batching."""
