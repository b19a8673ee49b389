"""Storing many small files at once (an image folder's images) in the content store.

:meth:`ContentStore.put` fsyncs every blob before publishing it: about 4 ms each on an
ordinary disk, so 60,000 images would spend four minutes in fsync alone. Here all
copies are written first, made durable with one ``os.sync()``, and only then renamed
into place, so the store's contract holds: a blob appears whole or not at all, and a
killed writer leaves only ``.incoming-HOST-PID-*`` files that ``sweep`` removes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from lineage.errors import LineageInputError
from lineage.messages import printable
from lineage.store import CHUNK, ContentStore, temp_tag

# Fewer files than this are stored one by one (ContentStore.put): a system-wide sync is
# not worth it for a handful.
BULK_FROM = 32


def put_many(store: ContentStore, items: Iterable[tuple[Path, str, str]],
             created: list[tuple[str, str]]) -> None:
    """Store each ``(source path, sha256, format)``; append ``(sha256, format)`` of every
    blob this call created to ``created`` as it is published (so a caller that fails
    later can remove them). A source whose bytes no longer hash to its sha256 is refused
    with LineageInputError and nothing of it is published."""
    items = list(items)
    if len(items) < BULK_FROM:
        for src, digest, fmt in items:
            if store.put(src, digest, fmt)[1]:
                created.append((digest, fmt))
        return
    pending: list[tuple[Path, Path, str, str]] = []  # (temporary file, blob path, digest, fmt)
    seen: set[Path] = set()
    published = 0
    try:
        for src, digest, fmt in items:
            dest = store.path_for(digest, fmt)
            if dest in seen or dest.is_file():  # the same image twice, or stored before
                continue
            seen.add(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".incoming-{temp_tag()}-")
            pending.append((Path(tmp), dest, digest, fmt))
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != digest:
                raise LineageInputError(f"{printable(Path(src).name)} changed while it was being "
                                        "stored; try again once it is complete")
            os.chmod(tmp, 0o444)
        if pending:
            os.sync()  # every copy durable before any is published
        for tmp, dest, digest, fmt in pending:
            os.replace(tmp, dest)
            published += 1
            created.append((digest, fmt))
    finally:
        for tmp, *_ in pending[published:]:
            tmp.unlink(missing_ok=True)
