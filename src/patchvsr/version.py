"""The package version (one module, so `patchvsr`, `api` and `cli` read it without importing one another)."""

__version__ = "0.1.0"
