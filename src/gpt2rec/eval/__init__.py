"""Ranking metrics (pure functions) and evaluation protocols that take a model as an argument."""
