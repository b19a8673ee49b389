"""The ``dataward`` commands, one module per command or command group.

Each module defines ``register(app)``, which adds its commands (or its sub-app) to the
Typer app :mod:`dataward.cli` assembles; what the commands share (error handling, the
context, JSON printing) is in :mod:`dataward.commands._common`. No module here imports
:mod:`dataward.cli`.
"""
