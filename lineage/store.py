"""Content-addressed file store under ``DATAWARD_HOME/store``.

A blob lives at ``store/sha256/ab/cdef....EXT`` named by the SHA-256 of its bytes
and the extension of its format (so readers that go by extension can open it).
Writes go to a temporary file in the same folder and are renamed into place, so
a crash leaves either the whole blob or nothing; storing existing content is a
no-op.

Temporary files carry the writer's host and process id in their names
(``.incoming-HOST-PID-*`` beside the blobs, ``staging/*-HOST-PID-*``), so
:meth:`ContentStore.sweep` can remove what a killed writer left behind without
touching a live writer's file, also when several hosts share the volume.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path

CHUNK = 1 << 20
EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl",
              "arrow": ".arrow", "png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "gif": ".gif",
              "webp": ".webp", "tiff": ".tif", "ppm": ".ppm"}
EXTENSIONS.update({f"{t}.{c}": f".{t}.{c}" for t in ("csv", "tsv", "jsonl") for c in ("gz", "bz2", "zst")})
# A temporary file from another host is only removed when older than this: its
# writer cannot be checked for life from here.
STALE_AFTER_S = 6 * 3600


def _host() -> str:
    return "".join(c for c in socket.gethostname() if c.isalnum())[:32] or "host"


def temp_tag() -> str:
    """``HOST-PID``: the part of a temporary file's name that says who is writing it."""
    return f"{_host()}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale_temp(path: Path, *, now: float | None = None) -> bool:
    """True if ``path`` is a temporary file whose writer is gone (or that is very old)."""
    parts = path.name.split("-")
    try:
        age = (now or time.time()) - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    # name: PREFIX-HOST-PID-RANDOM...
    for i in range(len(parts) - 1):
        if parts[i] == _host() and parts[i + 1].isdigit():
            return not pid_alive(int(parts[i + 1])) or age > STALE_AFTER_S
    return age > STALE_AFTER_S


def sha256_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """(hex digest, size in bytes) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class ContentStore:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path_for(self, digest: str, fmt: str = "") -> Path:
        ext = EXTENSIONS.get(fmt, "")
        return self.root / "sha256" / digest[:2] / f"{digest[2:]}{ext}"

    def has(self, digest: str, fmt: str = "") -> bool:
        return self.path_for(digest, fmt).is_file()

    def put(self, src: str | os.PathLike[str], digest: str, fmt: str = "") -> tuple[Path, bool]:
        """Copy ``src`` into the store under ``digest``; returns (path, created).

        The copy is re-hashed before it is published, so a file that changed
        while it was read is refused rather than stored under a wrong name.
        """
        dest = self.path_for(digest, fmt)
        if dest.is_file():
            return dest, False
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".incoming-{temp_tag()}-")
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != digest:
                from lineage.errors import LineageInputError

                raise LineageInputError(f"{Path(src).name} changed while it was being stored; "
                                        "try again once it is complete")
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest, True

    @property
    def staging(self) -> Path:
        """Where whole files are written before :meth:`adopt` moves them into the store."""
        path = self.root / "staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def staging_file(self, prefix: str, suffix: str = "") -> Path:
        """A new, empty temporary file in :attr:`staging`, named for :meth:`sweep`."""
        fd, tmp = tempfile.mkstemp(dir=self.staging, prefix=f"{prefix}-{temp_tag()}-", suffix=suffix)
        os.close(fd)
        return Path(tmp)

    def adopt_written(self, tmp: str | os.PathLike[str], fmt: str = "") -> tuple[Path, str, int]:
        """Fsync a file just written in :attr:`staging`, hash it and :meth:`adopt` it.
        Returns (path in the store, sha256, size in bytes)."""
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        digest, size = sha256_file(tmp)
        path, _ = self.adopt(tmp, digest, fmt)
        return path, digest, size

    def adopt(self, tmp: str | os.PathLike[str], digest: str, fmt: str = "") -> tuple[Path, bool]:
        """Move a finished, fsynced file whose hash is ``digest`` into the store (no copy).

        ``tmp`` must be on the store's filesystem (use :meth:`staging_file`); it is
        gone afterwards either way. Returns (path, created).
        """
        dest = self.path_for(digest, fmt)
        tmp = Path(tmp)
        if dest.is_file():
            tmp.unlink(missing_ok=True)
            return dest, False
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest, True

    def sweep(self) -> list[Path]:
        """Remove temporary files that killed writers left; returns what was removed.

        Blobs are never touched: a complete but unreferenced blob is harmless and
        may be adopted by the next run that produces the same bytes.
        """
        removed: list[Path] = []
        candidates = []
        if (self.root / "staging").is_dir():
            candidates += [p for p in (self.root / "staging").iterdir() if p.is_file()]
        shard_root = self.root / "sha256"
        if shard_root.is_dir():
            for shard in shard_root.iterdir():
                if shard.is_dir():
                    candidates += [p for p in shard.glob(".incoming-*")]
        now = time.time()
        for path in candidates:
            if is_stale_temp(path, now=now):
                try:
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
        return removed

    def remove(self, digest: str, fmt: str = "") -> None:
        self.path_for(digest, fmt).unlink(missing_ok=True)

    def verify(self, digest: str, fmt: str = "") -> str | None:
        """None if the blob is intact, else a sentence saying what is wrong."""
        path = self.path_for(digest, fmt)
        if not path.is_file():
            return f"blob {digest[:12]} is missing from the store"
        actual, _ = sha256_file(path)
        if actual != digest:
            return f"blob {digest[:12]} was modified (now hashes to {actual[:12]})"
        return None
