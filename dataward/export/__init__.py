"""What Dataward tells other tools: OpenLineage events (:mod:`.lineage_events`), Croissant
metadata and the dataset card (:mod:`.metadata_export`), the lineage graph
(:mod:`.lineage_graph`)."""
