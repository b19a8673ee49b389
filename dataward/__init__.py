"""Dataward: data governance and poisoning screening before training.

The app layer: configuration, the pipeline stages that join :mod:`lineage` and
:mod:`screening`, the decision policy, reports and the ``dataward`` CLI.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
