"""Command modules: each defines ``register(app)`` and adds its commands to the CLI.

Shared helpers (``handles_errors``, ``fail``, JSON printing) live in :mod:`dataward.cli`.
"""
