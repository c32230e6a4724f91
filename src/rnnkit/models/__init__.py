"""Task models: LanguageModel, ..."""
