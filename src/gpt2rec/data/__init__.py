"""Datasets, splits and negative sampling."""

from .dataset import Dataset

__all__ = ["Dataset"]
