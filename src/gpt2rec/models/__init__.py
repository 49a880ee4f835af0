"""Recommender models. Models score; the training loop and evaluators take them as arguments."""

from .base import ModelContext, ModelSpec, Recommender
from .registry import get_spec, model_names

__all__ = ["ModelContext", "ModelSpec", "Recommender", "get_spec", "model_names"]
