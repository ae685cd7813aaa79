"""`featurebank explain --at`: for a training-set row, which snapshot or version was joined and why (issue 21).

The oracle: a training set is built on a spine with midnight edges, the daylight-saving change,
unpublished dates, an entity without a row, a version stamped exactly at the row's instant and
versions at and around the ttl's edge; for every row and every group, `explain --at` names the
row's local date as snapshot, the date or version the join chose, and the very values the
training set holds, and the explanation of that date agrees with the published table. The NULL
cases' sentences and hostile input (a bad instant, both --date and --at, neither) are pinned.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from featurebank.compile.explain import same_value
from featurebank.engine import pit
from featurebank.training.joined import explain_at, parse_instant
from test_explain import SPEND, ZONE, _cli, project  # noqa: F401  (the module's published project)

PROFILE_GROUP = "customer_profile"
FEATURES = {SPEND: ("spend_sum_7d", "txn_count_7d", "avg_ticket_7d"), PROFILE_GROUP: ("segment", "tenure_days")}
AMS = ZoneInfo(ZONE)
UTC = timezone.utc
US = timedelta(microseconds=1)


def _local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=AMS).astimezone(UTC)


SPINE = [  # (customer, instant)
    ("c0", _local(2024, 3, 28)),  # local midnight: the snapshot of that very day
    ("c1", _local(2024, 3, 28) - US),  # 1 µs earlier: the day before, never published
    ("c2", _local(2024, 3, 31, 3, 0)),  # just after the summer-time jump
    ("c3", _local(2024, 4, 3) - US),  # the last µs of the last published day
    ("c8", _local(2024, 3, 30, 12)),  # every transaction declined: no row, counts 0
    ("c99", _local(2024, 3, 29, 10)),  # an entity nobody has seen
    ("c5", _local(2024, 4, 3)),  # the first day after the run: not published
    ("c1", datetime(2024, 3, 2, 9, tzinfo=UTC)),  # exactly c1's first version
    ("c1", datetime(2024, 3, 2, 9, tzinfo=UTC) - US),  # 1 µs before it: no version yet
    ("c1", datetime(2024, 3, 5, 23, 30, tzinfo=UTC) - US),  # before c1's second version
    ("c1", datetime(2025, 3, 5, 23, 29, 59, tzinfo=UTC)),  # 1 s inside the 365d ttl
    ("c1", datetime(2025, 3, 5, 23, 30, tzinfo=UTC)),  # exactly 365 days: beyond the ttl
    ("c0", datetime(2024, 3, 10, 8, tzinfo=UTC)),
    ("c3", datetime(2024, 3, 3, 10, 59, tzinfo=UTC)),
]


def _text(i: int, instant: datetime) -> str:
    """Every other row as an ISO instant with an offset, the others as wall-clock time in the project zone."""
    if i % 2:
        return instant.isoformat()
    return instant.astimezone(AMS).replace(tzinfo=None).isoformat(sep=" ")


@pytest.fixture(scope="module")
def built(spark, project):  # noqa: F811
    from featurebank.training.api import FeatureStore

    spine = pd.DataFrame({"customer_id": [c for c, _ in SPINE], "ts": [pd.Timestamp(t) for _, t in SPINE]})
    store = FeatureStore(project, spark=spark)
    references = [f"{g}:{f}" for g, names in FEATURES.items() for f in names]
    build = store.build_training_set(features=references, spine=spine, allow_missing=True)
    return [r.asDict() for r in build.frame.collect()]


def test_explain_at_names_the_snapshot_and_values_of_every_training_set_row(spark, project, built):  # noqa: F811
    assert len(built) == len(SPINE)
    seen: dict[str, set[str]] = {SPEND: set(), PROFILE_GROUP: set()}
    for i, ((customer, instant), row) in enumerate(zip(SPINE, built)):
        assert row["customer_id"] == customer
        for group, names in FEATURES.items():
            joined = explain_at(project, group, [customer], _text(i, instant), features=list(names), spark=spark)
            seen[group].add(joined.status)
            where = (customer, instant, group, joined.why)
            assert joined.at == instant, where
            assert joined.snapshot == instant.astimezone(AMS).date(), where  # the row's local date
            for name, value in joined.values:
                assert same_value(value, row[name]), (where, name, value, row[name])
            explained = joined.explanation
            if group == SPEND:
                assert joined.joined_date == (joined.snapshot if joined.status == pit.STATUS_MATCHED else None), where
                if joined.status == pit.STATUS_UNCOVERED:
                    assert explained is None and all(row[n] is None for n in names), where
                    continue
                assert explained is not None and explained.date == joined.snapshot and explained.agree, where
                assert explained.row == (joined.status == pit.STATUS_MATCHED), where
                for feature in explained.features:  # the date's published value is the training set's
                    if joined.status == pit.STATUS_MATCHED:
                        assert same_value(feature.published, row[feature.feature]), (where, feature.feature)
                    else:
                        assert row[feature.feature] == (0 if feature.feature == "txn_count_7d" else None), where
            else:
                assert explained is not None and explained.agree, where
                if joined.status == pit.STATUS_MATCHED:
                    chosen = explained.events[explained.features[0].events[0]]
                    assert joined.joined_ts == chosen.ts and chosen.ts <= instant, where
                    for feature in explained.features:
                        assert same_value(feature.value, row[feature.feature]), (where, feature.feature)
                else:
                    assert joined.joined_ts is None and not explained.row, where
                    assert all(row[n] is None for n in names), where
    assert seen[SPEND] == {pit.STATUS_MATCHED, pit.STATUS_FILLED, pit.STATUS_UNCOVERED}
    assert seen[PROFILE_GROUP] == {pit.STATUS_MATCHED, pit.STATUS_EXPIRED, pit.STATUS_NO_ROW}


def test_the_null_cases_explain_themselves(spark, project, capsys):  # noqa: F811
    cases = [
        (SPEND, "c1", "2024-03-27 23:59:59.999999",
         "joined: ts 2024-03-27 23:59:59 Europe/Amsterdam -> snapshot 2024-03-27 (covers events before 2024-03-27 "
         "00:00:00 Europe/Amsterdam), which customer_card_spend had not published as of Delta version {v} (no earlier "
         "date was published): every feature NULL, and a training set refuses such a row unless built with "
         "--allow-missing"),
        (SPEND, "c99", "2024-03-29T09:00:00Z",
         "joined: ts 2024-03-29 10:00:00 Europe/Amsterdam -> snapshot 2024-03-29 (covers events before 2024-03-29 "
         "00:00:00 Europe/Amsterdam), published (Delta version {v}) but without a row for this entity: the training "
         "set gets 0 for its count features (txn_count_7d) and NULL for the rest"),
        (PROFILE_GROUP, "c1", "2024-03-02T08:59:59.999999+00:00",
         "joined: ts 2024-03-02 09:59:59 Europe/Amsterdam -> no version: the table (Delta version {v}) holds none of "
         "this entity at or before ts (the entity is absent, or its first version is later): every feature NULL"),
        (PROFILE_GROUP, "c1", "2025-03-05T23:30:00Z",
         "joined: ts 2025-03-06 00:30:00 Europe/Amsterdam -> no version in force: the latest at or before ts, of "
         "2024-03-06 00:30:00 Europe/Amsterdam, is 365 days old, beyond the 365d ttl (Delta version {v}): every "
         "feature NULL"),
        (PROFILE_GROUP, "c1", "2025-03-05T23:29:59Z",
         "joined: ts 2025-03-06 00:29:59 Europe/Amsterdam -> the version of 2024-03-06 00:30:00 Europe/Amsterdam "
         "(the entity's latest at or before ts, Delta version {v}); 364 days 23:59:59 old, ttl 365d ok"),
    ]
    for group, customer, at, expected in cases:
        asked = [a for f in FEATURES[group][:2] for a in ("--feature", f)]
        code, out, err = _cli(capsys, "explain", group, "--key", customer, "--at", at, *asked,
                              "--project", str(project.root))
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0] == f"training-set row: {group} (customer_id='{customer}') at {at}"
        version = re.search(r"Delta version (\d+)", lines[1]).group(1)  # type: ignore[union-attr]
        assert lines[1] == expected.format(v=version), lines[1]
        assert lines[2].startswith(f"values: {FEATURES[group][0]} = ")
    code, out, _ = _cli(capsys, "explain", SPEND, "--key", "c0", "--at", "2024-03-28 00:00", "--json",
                        "--project", str(project.root))
    import json

    document = json.loads(out)
    assert code == 0 and document["status"] == "matched" and document["joined_date"] == "2024-03-28"
    assert document["explanation"]["date"] == "2024-03-28" and document["explanation"]["agree"] is True


@pytest.mark.parametrize("argv,sentence", [
    (["--at", "yesterday"], "--at 'yesterday' is not an instant; write it as YYYY-MM-DDTHH:MM[:SS] with an offset "
                            "(2024-03-05T10:00+01:00, or Z for UTC), or without one for wall-clock time in "
                            "Europe/Amsterdam"),
    (["--at", "2024-02-30T10:00"], "--at '2024-02-30T10:00' is not an instant"),
    (["--at", "2024-03-29T10:00", "--date", "2024-03-29"],
     "give --date D (a snapshot date) or --at TS (a training-set row's instant), not both"),
    ([], "give --date D (a snapshot date) or --at TS (a training-set row's instant), one of them"),
])
def test_hostile_input_is_one_sentence_and_exit_2(project, capsys, argv, sentence):  # noqa: F811
    code, out, err = _cli(capsys, "explain", SPEND, "--key", "c0", *argv, "--project", str(project.root))
    assert code == 2 and out == ""
    assert sentence in err and len(err.strip().splitlines()) == 1, err


def test_parse_instant_reads_offsets_and_project_wall_clock():
    assert parse_instant("2024-03-31T03:00", ZONE) == datetime(2024, 3, 31, 1, tzinfo=UTC)
    assert parse_instant(" 2024-03-31T01:00Z ", ZONE) == datetime(2024, 3, 31, 1, tzinfo=UTC)
    assert parse_instant("2024-03-31 03:00+02:00", ZONE) == datetime(2024, 3, 31, 1, tzinfo=UTC)
