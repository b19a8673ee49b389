"""OpenLineage for the system of record: the identities events share (:mod:`.refs`), the
event emitter (:mod:`.emitter`), the facets (:mod:`.facets`) and the JSON Schemas of
Dataward's custom facets (``schemas/``)."""
