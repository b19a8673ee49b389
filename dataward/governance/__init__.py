"""Governance: the rules a version is held to and the people who sign it off.

- :mod:`.policy` - the decision policy (``load_policy``, ``decide``)
- :mod:`.review` - a reviewer's sign-off on a quarantined version
- :mod:`.reference` - which trusted reference set a screen uses (the trust chain)
- :mod:`.reference_review` - a reviewer confirms a reference set from a version's rows
- :mod:`.remediation` - re-run a stage and what follows it, keeping the history
"""
