"""The objects every stage needs, built once from :class:`Settings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from dataward.config import Settings, load_settings


@dataclass
class Context:
    settings: Settings = field(default_factory=load_settings)

    @cached_property
    def engine(self):
        from lineage.db import get_engine

        return get_engine(self.settings.db_url)

    @cached_property
    def store(self):
        from lineage.store import ContentStore

        return ContentStore(self.settings.store_root)

    @cached_property
    def emitter(self):
        from lineage.openlineage.emitter import Emitter

        return Emitter(self.settings.home)

    @cached_property
    def licence_policy(self):
        from lineage.licences import load_policy

        return load_policy(self.settings.licence_policy)

    def session(self, *, read_only: bool = False):
        from lineage.db import session_scope

        return session_scope(self.engine, read_only=read_only)
