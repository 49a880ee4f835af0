"""The text side: metadata -> sentences (templates), sentences -> vectors (encoder, LoRA, fast mode),
an on-disk embedding cache, and offline language models shipped as PyPI packages.

Heavy dependencies (transformers, peft) are imported lazily inside the functions that need them, so
`import gpt2rec.text.templates` stays cheap.
"""
