"""checkout-sessions runner: renders and applies the SQL project, runs jobs, reports and the service."""


def __getattr__(name: str) -> str:
    # The version from the installed package's metadata (pyproject.toml is its one source), read on demand:
    # importing the metadata machinery would slow every command's start for a value only --version shows.
    if name == "__version__":
        from importlib.metadata import version

        return version("checkout-sessions")
    raise AttributeError(f"module 'runner' has no attribute {name!r}")
