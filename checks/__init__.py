"""Pure data checks that are neither screens nor the system of record.

- :mod:`checks.validation`: schema and value checks with Great Expectations suites;
- :mod:`checks.pii`: the personal-data scan (which columns hold e-mail addresses, card
  numbers, national identifiers ...);
- :mod:`checks.leakage`: row hashing, exact and near duplicates, train/test leakage;
- :mod:`checks.diff`: the statistics of a version diff (rows added/removed/relabelled,
  label shift, PSI and KS drift).

Layering: like ``screening`` and ``lineage``, this package imports none of
``screening``, ``lineage``, the app package (``dataward``) or Airflow; the app layer
reads the data, calls these functions and records the results in lineage. Data files are
read through :mod:`datafiles` (pyarrow only), the reader ingest uses too.
"""
