"""gpt2rec: recommendations that read user and item metadata with a pretrained language model."""

__version__ = "0.1.0"
