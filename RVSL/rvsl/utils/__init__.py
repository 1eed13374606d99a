"""Small shared helpers: errors, logging, seeding."""

from .errors import InputError

__all__ = ["InputError"]
