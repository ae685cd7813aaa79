"""Property: any valid project, loaded, dumped and loaded again, gives the same definitions and plans."""

from __future__ import annotations

import re
import tempfile
from dataclasses import fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurebank.definitions import load_project
from featurebank.definitions.dump import dump_documents, dump_project
from featurebank.definitions.model import AGGREGATION_FUNCTIONS
from featurebank.compile.run import compile_plan

CONF = "feature_root: ./warehouse/features\nvariables: {raw_root: ./raw}\ntimezone: Europe/Amsterdam\n"
COLUMN_TYPES = ["string", "int", "bigint", "double", "decimal(12,2)", "date", "timestamp", "boolean"]
NUMERIC = ("int", "bigint", "double", "decimal(12,2)")
WORDS = ["alpha", "bravo", "delta", "echo", "gold", "kilo", "lima", "nova", "oscar", "papa", "sierra", "zulu"]

names = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3, unique=True).map("_".join)
text = st.text(alphabet="abcdefghij klmnop,.:-'\"#é", max_size=30)
windows = st.lists(st.integers(1, 730), min_size=1, max_size=3, unique=True)


@st.composite
def projects(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A valid project as definition documents: one entity, one source, 1-3 groups, a training set."""
    column_names = draw(st.lists(names, min_size=2, max_size=6, unique=True))
    columns = {"entity_id": "string", "ts": "timestamp", **{f"c_{n}": draw(st.sampled_from(COLUMN_TYPES)) for n in column_names}}
    numeric = [c for c, t in columns.items() if t in NUMERIC]
    plain = [c for c in columns if c not in ("entity_id",)]
    readiness = draw(st.sampled_from([None, "marker", "marker_path", "daily_rows", "daily_min", "watermark"]))
    signals: dict[str, Any] = {
        "marker": {"marker": "_SUCCESS"}, "marker_path": {"marker": "${raw_root}/done/_READY"},
        "daily_rows": {"daily_rows": {"min": draw(st.integers(0, 10)), "max": draw(st.integers(10, 10**6))}},
        "daily_min": {"daily_rows": {"min": draw(st.integers(1, 10))}}, "watermark": {"watermark": "loaded_until"},
    }
    documents: list[dict[str, Any]] = [
        {"kind": "entity", "name": "thing", "keys": ["entity_id"], "description": draw(text)},
        {"kind": "source", "name": "events", "format": draw(st.sampled_from(["parquet", "delta", "csv"])),
         "path": "${raw_root}/events", "timestamp": "ts",
         "columns": {**columns, **({"loaded_until": "timestamp"} if readiness == "watermark" else {})},
         "pii_columns": [plain[0]],
         **({"options": {"header": True, "sep": ";"}} if draw(st.booleans()) else {}),
         **({"lag": f"{draw(st.integers(0, 30))}d"} if draw(st.booleans()) else {}),
         **({"readiness": signals[readiness]} if readiness else {})},
    ]
    group_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    references = []
    for index, group_name in enumerate(group_names):
        group: dict[str, Any] = {"kind": "feature_group", "name": f"g{index}_{group_name}", "entity": "thing", "source": "events"}
        if draw(st.booleans()):
            group["filter"] = f"{draw(st.sampled_from(plain))} is not null"
        if draw(st.booleans()):
            group["tags"] = {"domain": draw(names), "pii": draw(st.booleans())}
        group["owner"] = draw(st.sampled_from(["", "team-a"])) or "team-b"
        if draw(st.booleans()):
            group["empty_input"] = draw(st.sampled_from(["allowed", "refused"]))
        if draw(st.booleans()):  # aggregation group
            aggregations = []
            for n, agg_name in enumerate(draw(st.lists(names, min_size=1, max_size=4, unique=True))):
                function = draw(st.sampled_from(AGGREGATION_FUNCTIONS))
                item: dict[str, Any] = {"name": f"a{index}{n}_{agg_name}", "function": function,
                                        "windows": [f"{w}d" for w in draw(windows)]}
                if function in ("sum", "avg", "stddev") and numeric:
                    item["expr"] = draw(st.sampled_from(numeric))
                elif function != "count" or draw(st.booleans()):
                    item["expr"] = draw(st.sampled_from(plain)) if function not in ("sum", "avg", "stddev") else "1"
                if draw(st.booleans()):
                    item["description"] = draw(text)
                aggregations.append(item)
            group["aggregations"] = aggregations
            outputs = [f"{a['name']}_{w}" for a in aggregations for w in a["windows"]]
            if draw(st.booleans()):
                # declassified needs a PII input: here the group's own pii: true tag
                group["derived"] = [{"name": f"d{index}_ratio", "expr": f"{outputs[0]} / nullif({outputs[-1]}, 0)",
                                     **({"declassified": "aggregate only"} if group.get("tags", {}).get("pii") else {})}]
                outputs.append(f"d{index}_ratio")
            group["checks"] = [{"expect_column_values_to_not_be_null": {"column": draw(st.sampled_from(outputs)), "mostly": 0.5},
                                "severity": draw(st.sampled_from(["error", "warn"]))}]
        else:
            features = [{"name": f"f{index}{n}_{c[2:]}", "expr": f"upper(cast({c} as string))", "tags": {"pii": True}}
                        for n, c in enumerate(draw(st.lists(st.sampled_from(plain), min_size=1, max_size=3, unique=True)))]
            group["features"] = features
            outputs = [f["name"] for f in features]
            if draw(st.booleans()):
                group["ttl"] = f"{draw(st.integers(1, 2000))}d"
            group["checks"] = [{"expect_column_values_to_be_in_set": {"column": outputs[0], "value_set": ["a", "b"]}}]
        documents.append(group)
        references.append(f"{group['name']}:{draw(st.sampled_from(['*', outputs[0]]))}")
    documents.append({"kind": "training_set", "name": "model_v1", "features": references, "owner": "ds"})
    return documents


def load_text(text: str) -> tuple[Any, dict[str, Any], str]:
    """Load `text` as the only definitions file of a fresh project; its plans for January 2024."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "conf").mkdir()
        (root / "conf" / "local.yaml").write_text(CONF)
        (root / "features").mkdir()
        (root / "features" / "all.yaml").write_text(text)
        project = load_project(root, "local")
        plans = {g: compile_plan(project, g, date(2024, 1, 1), date(2024, 1, 31)) for g in project.groups}
        return project, plans, str(root.resolve())


def normal(value: Any, roots: tuple[str, ...]) -> Any:
    """A comparable form: no source locations (file:line), project roots replaced by <root>."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: normal(getattr(value, f.name), roots) for f in fields(value) if f.name != "loc"}
    if isinstance(value, dict):
        return {k: normal(v, roots) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [normal(v, roots) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<root>")
        return re.sub(r"(\.yaml):[0-9]+$", r"\1", value)
    return value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(projects())
def test_load_dump_load_gives_the_same_definitions_and_plans(documents: list[dict[str, Any]]) -> None:
    first, first_plans, first_root = load_text(dump_documents(documents))
    text = dump_project(first)
    second, second_plans, second_root = load_text(text)
    roots = (first_root, second_root)
    assert dump_project(second) == text
    for kind in ("entities", "sources", "groups", "training_sets"):
        assert normal(getattr(second, kind), roots) == normal(getattr(first, kind), roots)
    assert normal(second_plans, roots) == normal(first_plans, roots)
    assert {g: (p.data_hash, p.metadata_hash) for g, p in second_plans.items()} == {g: (p.data_hash, p.metadata_hash) for g, p in first_plans.items()}
