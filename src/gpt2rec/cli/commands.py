"""The explicit list of subcommand modules, in the order `gpt2rec --help` shows them."""

MODULES: list = []
