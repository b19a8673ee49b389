"""Dataward's system of record: lineage database, content store, licences, audit log.

Public surface (everything else is internal and free to change):

- :mod:`lineage.db` - ``get_engine(url)``, ``session_scope(engine)``, ``default_url(home)``
- :mod:`lineage.ingest` - ``ingest(...)``, ``resolve(session, "NAME[@VERSION]")``
- :mod:`lineage.manifest` - ``load(path)``, ``parse_ref(ref)``
- :mod:`lineage.licences` - ``load_policy()``, ``judge()``, ``normalize()``
- :mod:`lineage.audit` - ``append()``, ``verify_chain()``
- :mod:`lineage.store` - ``ContentStore``
- :mod:`lineage.openlineage.emitter` - ``Emitter`` (OpenLineage)
- :mod:`lineage.errors` - ``LineageInputError``, ``NotFound``
"""
