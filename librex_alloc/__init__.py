"""librex-alloc: constrained Thompson sampling for multi-agent resource allocation."""

__version__ = "0.1.0"
