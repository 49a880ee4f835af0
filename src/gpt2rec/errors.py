"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class UserError(Exception):
    """Bad input or environment that the user can fix. The message names the problem and the fix."""


class DataError(UserError):
    """A data file or value that cannot be used as it is."""


class MissingDependencyError(UserError):
    """An optional dependency is not installed."""


def require(module: str, extra: str, also: str = ""):
    """Import an optional dependency lazily, or raise an error naming the extra to install (and `also`,
    a further install command, e.g. a package that must go in with --no-deps)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        then = f" && {also}" if also else ""
        raise MissingDependencyError(
            f"'{module}' is not installed; install it with: pip install 'gpt2rec[{extra}]'{then}"
        ) from exc


class NonFiniteLossError(ValueError):
    """The training loss became NaN or infinite (learning rate too high, or non-finite data)."""
