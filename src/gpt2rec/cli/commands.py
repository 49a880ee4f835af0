"""The explicit list of subcommand modules, in the order `gpt2rec --help` shows them."""

from . import bench, data, demo, encode, evaluate, recommend, serve, train

MODULES: list = [data, encode, train, evaluate, recommend, serve, demo, bench]
