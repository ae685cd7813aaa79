"""The catalog side: find a feature, know exactly what it means, see that it is fresh and healthy.

    lineage.py         source columns → aggregations → derived features → training sets (pure)
    status.py          freshness (against today in the project time zone), runs, last check results
    profile.py         the profile stored when the latest date was published (no Spark)
    collect.py         `collect_catalog(project, ...)`: all of the above as one value
    render.py          what `featurebank list` / `describe` print
    site.py, svg.py    `featurebank docs`: the static HTML site (templates/ holds its CSS and JS)

Every feature's meaning in words is `compile.semantics` (the publish writes it into column
comments through `io.table_metadata`); the catalog reads compiled groups, never run plans.
"""
