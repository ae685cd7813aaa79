"""The catalog side: find a feature, know exactly what it means, see that it is fresh and healthy.

    semantics.py       every feature's meaning in words, from its compiled plan (pure)
    lineage.py         source columns → aggregations → derived features → training sets (pure)
    status.py          freshness (against today in the project time zone), runs, last check results
    profile.py         the latest published partition per feature, in two Spark passes per group
    collect.py         `collect_catalog(project, ...)`: all of the above as one value
    render.py          what `featurebank list` / `describe` print
    site.py, svg.py    `featurebank docs`: the static HTML site (templates/ holds its CSS and JS)
    table_metadata.py  column comments and table properties on the groups' Delta tables
"""
