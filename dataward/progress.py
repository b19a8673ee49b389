"""Progress on long work: one source (module loggers), two views.

The pipeline logs each stage to the ``dataward.pipeline`` logger and the screens log
featurising, folds and rounds to the ``screening`` logger. Under Airflow those records
go to the task log like any other. On a terminal, :func:`progress_display` shows them as
a rich progress display on stderr (a bar over the stages, the latest step beside it);
elsewhere (a pipe, a file, CI) nothing, so a refusal stays one line, unless
``DATAWARD_PROGRESS=plain`` asks for plain lines. Standard output is never touched, so
``--json`` stays clean.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

LOGGERS = ("dataward", "screening")
log = logging.getLogger("dataward.pipeline")


class _RichHandler(logging.Handler):
    """Log records as a rich progress display: stage records move the bar."""

    def __init__(self, progress, task) -> None:
        super().__init__(logging.INFO)
        self.progress, self.task, self.stage = progress, task, ""

    def emit(self, record: logging.LogRecord) -> None:
        from rich.markup import escape

        try:
            msg = record.getMessage()
            stage = getattr(record, "stage", None)
            if stage and getattr(record, "done", False):
                self.progress.console.print(f"[green]done[/green] {escape(msg)}", markup=True, highlight=False)
                self.progress.advance(self.task)
            elif stage:
                self.stage = stage
                self.progress.update(self.task, description=f"[bold]{escape(stage)}[/bold]")
            else:  # a message may quote a column name or a file: text, not markup
                self.progress.update(self.task, description=f"[bold]{escape(self.stage)}[/bold]: "
                                                            f"{escape(msg[:70])}")
        except Exception:  # a display must never break the work
            self.handleError(record)


@contextlib.contextmanager
def progress_display(*, total: int | None = None, enabled: bool = True,
                     plain: bool | None = None) -> Iterator[None]:
    """Show the ``dataward`` and ``screening`` loggers' INFO records on stderr while the
    block runs: a rich progress display on a terminal; elsewhere nothing, unless
    ``plain`` (default: ``DATAWARD_PROGRESS=plain``) asks for plain lines."""
    import os

    if plain is None:
        plain = os.environ.get("DATAWARD_PROGRESS", "").lower() == "plain"
    if not enabled:
        yield
        return
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(lg, lg.level) for lg in loggers]
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)
        task = progress.add_task("starting", total=total)
        handler: logging.Handler = _RichHandler(progress, task)
        context = progress
    elif plain:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        handler.setLevel(logging.INFO)
        context = contextlib.nullcontext()
    else:  # not a terminal: stderr stays for the one line a failure prints
        yield
        return
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        with context:
            yield
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


@contextlib.contextmanager
def stage_logged(stage: str, ref: str) -> Iterator[None]:
    """Log a stage's start and its end with the seconds it took."""
    log.info("%s %s: started", stage, ref, extra={"stage": stage})
    started = time.perf_counter()
    yield
    log.info("%s %s: done in %.1f s", stage, ref, time.perf_counter() - started,
             extra={"stage": stage, "done": True})
