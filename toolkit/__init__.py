"""toolkit: reproducible ML experiments, from lockfile to run diff."""

__version__ = "0.1.0"
