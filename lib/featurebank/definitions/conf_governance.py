"""`governance:` of `conf/<env>.yaml` → `Governance`: the tag vocabulary, Lake Formation and consumers.

    governance:
      tags: {domain: [cards, fraud, customer], pii: [true, false]}   # the tags definitions may use
      lake_formation: true          # `featurebank grants` applies LF-tags and grants in this env
      lf_tags: [domain, pii]        # the tag keys that become Lake Formation LF-tags (default: all)
      identity: arn:aws:iam::111122223333:role/fraud-ds   # whom `training-set` checks access as by default
      consumers:                    # one grant each: SELECT on every column whose tags match
        - {principal: arn:aws:iam::111122223333:role/fraud-ds, tag_expression: {domain: [cards, fraud], pii: [false]}}
      erasers: [arn:aws:iam::111122223333:role/dpo]   # who may run `featurebank erase` (default: nobody)
      erasure_salt: ${env:FEATUREBANK_ERASURE_SALT}   # salts the key hashes `_erasures` keeps

Every key is optional. Checked as conf is read (`conf_load.load_config`); the tags and PII
of definitions are checked against it in `definitions.governance`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from featurebank.definitions.config import PII, PII_VALUES, Consumer, Governance, tag_value
from featurebank.definitions.loader import YList, YMap, did_you_mean
from featurebank.definitions.model import Location
from featurebank.errors import Problem

GOVERNANCE_KEYS = ("tags", "lake_formation", "lf_tags", "identity", "consumers", "erasers", "erasure_salt")
CONSUMER_KEYS = ("principal", "tag_expression", "description")
_PRINCIPAL = re.compile(r"^(\d{12}|arn:aws[a-z-]*:(iam|organizations)::\d{0,12}:[A-Za-z0-9+=,.@_/:-]+)$")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.:/=+@-]{1,128}$")


def parse_governance(data: YMap | None, rel: str, catalog_type: str, problems: list[Problem]) -> Governance:
    """Check `governance:` (`data`; None when conf has no such section) of `rel`.

    Appends a problem for every mistake (unknown key with a did-you-mean, a value of the
    wrong type, a consumer tag expression using a tag key or value the vocabulary does not
    know, an unreadable principal, Lake Formation without `pii` among `lf_tags` or without a
    Glue catalog), each at `conf/<env>.yaml:line`.
    """
    if data is None:
        return Governance(conf_file=rel)

    def problem(line: int, message: str) -> None:
        problems.append(Problem(rel, line, message))

    for key in data:
        if key not in GOVERNANCE_KEYS:
            problem(data.line_of(key), f"unknown governance key '{key}'"
                                       f"{did_you_mean(key, GOVERNANCE_KEYS) or '; remove it (allowed: ' + ', '.join(GOVERNANCE_KEYS) + ')'}")

    tags: dict[str, tuple[str, ...]] = {}
    raw_tags = data.get("tags")
    if raw_tags is not None:
        if not isinstance(raw_tags, YMap):
            problem(data.line_of("tags"), "governance.tags must map each tag key to its allowed values; "
                                          "write tags: {domain: [cards, fraud], pii: [true, false]}")
        else:
            for key, values in raw_tags.items():
                line = raw_tags.line_of(key)
                if not _TAG_KEY.match(key):
                    problem(line, f"tag key '{key}' is not a valid Lake Formation tag key; use letters, digits and _.:/=+@-")
                if not isinstance(values, YList) or not values or any(isinstance(v, (YMap, YList)) or v is None for v in values):
                    problem(line, f"governance.tags.{key} must be a non-empty list of values; write {key}: [a, b]")
                    continue
                tags[key] = tuple(tag_value(v) for v in values)
            if PII in tags and set(tags[PII]) != set(PII_VALUES):
                problem(raw_tags.line_of(PII), f"governance.tags.pii must be [true, false], not [{', '.join(tags[PII])}]; "
                                               "featurebank computes pii for every column")
            tags[PII] = PII_VALUES
    vocabulary = dict(tags) or {PII: PII_VALUES}

    lake_formation = data.get("lake_formation", False)
    if not isinstance(lake_formation, bool):
        problem(data.line_of("lake_formation"), f"governance.lake_formation must be true or false, not {lake_formation!r}")
        lake_formation = False

    # Without a declared vocabulary every tag key a definition uses counts (lf_tags = ()).
    lf_tags: tuple[str, ...] = tuple(vocabulary) if raw_tags is not None else ()
    raw_lf = data.get("lf_tags")
    if raw_lf is not None:
        if not isinstance(raw_lf, YList) or not all(isinstance(k, str) for k in raw_lf):
            problem(data.line_of("lf_tags"), "governance.lf_tags must be a list of tag keys; write lf_tags: [domain, pii]")
        else:
            lf_tags = tuple(raw_lf)
            for index, key in enumerate(raw_lf):
                if key not in vocabulary:
                    problem(raw_lf.line_of(index), f"LF-tag '{key}' is not a tag key of governance.tags"
                                                   f"{did_you_mean(key, vocabulary) or '; declare it under governance.tags with its values'}")
    if lake_formation and raw_tags is None:
        problem(data.line_of("lake_formation"), "Lake Formation needs the LF-tag values; declare them under governance.tags, "
                                                "e.g. tags: {domain: [cards, fraud], pii: [true, false]}")
    elif lake_formation and PII not in lf_tags:
        problem(data.line_of("lf_tags"), "governance.lf_tags must include pii when lake_formation is on, "
                                         "or PII columns are not protected; add pii to lf_tags")
    if lake_formation and catalog_type != "glue":
        problem(data.line_of("lake_formation"), "Lake Formation governs tables of the Glue Data Catalog, but this environment "
                                                "has no Glue catalog; set catalog: {type: glue, database: <name>} or lake_formation: false")

    identity = data.get("identity")
    if identity is not None and (not isinstance(identity, (str, int)) or not _PRINCIPAL.match(str(identity))):
        problem(data.line_of("identity"), f"governance.identity '{identity}' is not a principal; write an IAM role ARN "
                                          "(arn:aws:iam::<account>:role/<name>) or a 12-digit account id")
        identity = None

    consumers: list[Consumer] = []
    raw_consumers = data.get("consumers")
    if raw_consumers is not None:
        if not isinstance(raw_consumers, YList):
            problem(data.line_of("consumers"), "governance.consumers must be a list; write - {principal: ..., tag_expression: {...}}")
        else:
            for index, item in enumerate(raw_consumers):
                consumer = _consumer(item, raw_consumers.line_of(index), rel, vocabulary, lf_tags, problem)
                if consumer is not None:
                    consumers.append(consumer)
    erasers = data.get("erasers")
    if erasers is not None and (not isinstance(erasers, YList) or not all(isinstance(e, (str, int)) for e in erasers)):
        problem(data.line_of("erasers"), "governance.erasers must be a list of principals (IAM ARNs, or OS users "
                                         "locally); write erasers: [arn:aws:iam::<account>:role/<name>]")
        erasers = None
    salt = data.get("erasure_salt")
    if salt is not None and (not isinstance(salt, str) or len(salt) < 16):
        problem(data.line_of("erasure_salt"), "governance.erasure_salt must be a secret of at least 16 characters; "
                                              "write erasure_salt: ${env:FEATUREBANK_ERASURE_SALT}")
        salt = None
    return Governance(
        erasers=tuple(str(e) for e in erasers or ()),
        erasure_salt=salt,
        conf_file=rel,
        tags=tuple(tags.items()),
        declared=raw_tags is not None,
        lake_formation=lake_formation,
        lf_tags=lf_tags,
        identity=None if identity is None else str(identity),
        consumers=tuple(consumers),
    )


def _consumer(item: Any, line: int, rel: str, vocabulary: dict[str, tuple[str, ...]], lf_tags: tuple[str, ...],
              problem: Callable[[int, str], None]) -> Consumer | None:
    if not isinstance(item, YMap):
        problem(line, "each consumer must be a mapping; write - {principal: arn:aws:iam::<account>:role/<name>, "
                      "tag_expression: {pii: [false]}}")
        return None
    for key in item:
        if key not in CONSUMER_KEYS:
            problem(item.line_of(key), f"unknown consumer key '{key}'"
                                       f"{did_you_mean(key, CONSUMER_KEYS) or '; remove it (allowed: ' + ', '.join(CONSUMER_KEYS) + ')'}")
    principal = item.get("principal")
    if principal is None:
        problem(line, "this consumer has no principal; add principal: arn:aws:iam::<account>:role/<name> (or an account id)")
        return None
    principal = str(principal)
    if not _PRINCIPAL.match(principal):
        problem(item.line_of("principal"), f"consumer principal '{principal}' is not an IAM role or user ARN "
                                           "(arn:aws:iam::<account>:role/<name>) nor a 12-digit account id; fix it")
    expression = item.get("tag_expression")
    if not isinstance(expression, YMap) or not expression:
        problem(item.line_of("tag_expression"), f"consumer {principal} needs a tag_expression mapping tag keys to the values "
                                                "it may read; write tag_expression: {domain: [cards], pii: [false]}")
        return None
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for key, values in expression.items():
        key_line = expression.line_of(key)
        if lf_tags and key not in lf_tags:
            problem(key_line, f"consumer {principal} grants by tag '{key}', which is not an LF-tag"
                              f"{did_you_mean(key, lf_tags) or ' (LF-tags: ' + ', '.join(lf_tags) + ')'}")
            continue
        if not isinstance(values, YList) or not values or any(isinstance(v, (YMap, YList)) or v is None for v in values):
            problem(key_line, f"tag_expression.{key} of consumer {principal} must be a non-empty list; write {key}: [a, b]")
            continue
        texts = tuple(tag_value(v) for v in values)
        for value in texts:
            if key in vocabulary and value not in vocabulary[key]:
                problem(key_line, f"consumer {principal} allows {key}={value}, which governance.tags does not list"
                                  f"{did_you_mean(value, vocabulary.get(key, ())) or ' (values: ' + ', '.join(vocabulary.get(key, ())) + ')'}")
        pairs.append((key, texts))
    description = item.get("description")
    return Consumer(principal, tuple(sorted(pairs)), "" if description is None else str(description), Location(rel, line))
