"""Governance: the rules a version is held to and the people who sign it off.

- :mod:`.policy` - the decision policy (``load_policy``, ``apply_policy``)
- :mod:`.review` - a reviewer's sign-off on a quarantined version
- :mod:`.reference` - which trusted reference set a screen uses (the trust chain)
- :mod:`.reference_review` - a reviewer confirms a reference set from a version's rows
- :mod:`.remediation` - what a rerun may replace, and the version's history

Governance knows nothing of Airflow or of how a pipeline runs: where it must act through
them (publish after an approval, rerun after a confirmation) the caller passes the
function in.
"""
