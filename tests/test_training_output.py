"""Where a training set may be written, what types its spine columns come back with, and that
every build is registered under `<feature_root>/_training_sets` (issue 16: findings 2, 14, 7).

Reuses the training-set tests' small published world (three groups, tens of rows).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from featurebank.errors import UsageError
from test_training import DAYS, TZ, _spine, copied_world

FEATURES = "customer_profile:segment,customer_card_spend:spend_sum_7d"


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    return copied_world(spark, tmp_path_factory, "output")


def _tree_hash(root: str) -> str:
    """Every file under `root`: relative path and content bytes, in a stable order."""
    digest = hashlib.sha256()
    for directory, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = Path(directory) / name
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cli(world, spine: Path, out: str, *extra: str) -> int:
    from featurebank.cli import main

    return main(["training-set", "--features", FEATURES, "--project", str(world.project.root), "--spine", str(spine),
                 "--out", out, *extra])


@pytest.fixture(scope="module")
def spine_file(world, tmp_path_factory) -> Path:
    _, pdf = _spine(random.Random(21), world, DAYS[:8], n=20)
    path = tmp_path_factory.mktemp("spine") / "spine.parquet"
    pdf.to_parquet(path)
    return path


# --- finding 2: writes only where they belong ---------------------------------------------------

def _refused_outs(world, spine_dir: Path, tmp_path: Path) -> dict[str, str]:
    root = world.project.config.feature_root
    cluttered = tmp_path / "cluttered"
    cluttered.mkdir()
    (cluttered / "notes.txt").write_text("mine")
    fake = tmp_path / "fake_manifest"
    fake.mkdir()
    (fake / "_manifest.json").write_text("{not a manifest")
    link = tmp_path / "link_to_root"
    link.symlink_to(root)
    return {
        "the feature root": root,
        "the feature root, spelled with a trailing slash": root + "/",
        "the feature root, spelled through ..": f"{root}/../{Path(root).name}",
        "the feature root, through a symlink": str(link),
        "a group's table": f"{root}/customer_profile",
        "the run log": f"{root}/_runs",
        "a new directory inside the feature root": f"{root}/training/v1",
        "a directory holding the feature root": str(Path(root).parent),
        "a non-empty directory that is not a training set": str(cluttered),
        "a directory whose _manifest.json is not a manifest": str(fake),
        "the spine itself": str(spine_dir),
        "a directory inside the spine": str(spine_dir / "out"),
    }


def test_cli_refuses_every_output_over_the_feature_root_the_spine_or_foreign_files(world, spine_file, tmp_path, capsys):
    root = world.project.config.feature_root
    spine_dir = tmp_path / "spine_dir"
    spine_dir.mkdir()
    (spine_dir / "part-0.parquet").write_bytes(spine_file.read_bytes())
    before, spine_before = _tree_hash(root), _tree_hash(str(spine_dir))
    for what, out in _refused_outs(world, spine_dir, tmp_path).items():
        holder = Path(root).parent
        holder_before = _tree_hash(str(holder))
        assert _cli(world, spine_dir, out) == 2, what
        err = capsys.readouterr().err
        assert "--out" in err and "nothing was written" in err, (what, err)
        assert _tree_hash(root) == before, what
        assert _tree_hash(str(holder)) == holder_before, what
        assert _tree_hash(str(spine_dir)) == spine_before, what
    assert (tmp_path / "cluttered" / "notes.txt").read_text() == "mine"


def test_api_refuses_the_same_outputs_and_writes_nothing(world, spine_file, tmp_path):
    from featurebank.training.api import FeatureStore

    store = FeatureStore(world.project, spark=world.spark)
    root = world.project.config.feature_root
    spine_dir = tmp_path / "spine_dir"
    spine_dir.mkdir()
    (spine_dir / "part-0.parquet").write_bytes(spine_file.read_bytes())
    before = _tree_hash(root)
    for what, out in _refused_outs(world, spine_dir, tmp_path).items():
        with pytest.raises(UsageError, match="--out"):
            store.write_training_set(features=FEATURES.split(","), spine=str(spine_dir), out=out)
        with pytest.raises(UsageError, match="--out"):
            store.training_set(features=FEATURES.split(","), spine=str(spine_dir), out=out)
        assert _tree_hash(root) == before, what


def test_output_paths_compare_as_normalised_paths_and_s3_uris():
    from featurebank.training.output import output_conflict

    root = "s3://bank/feature-layer"
    assert "inside the feature root" in output_conflict("s3a://bank/feature-layer/ts/v1", root, None)
    assert "is the feature root" in output_conflict("s3://bank//feature-layer/", root, None)
    assert "holds the feature root" in output_conflict("s3://bank", root, None)
    assert output_conflict("s3://bank/feature-layer-training/v1", root, None) is None
    assert output_conflict("s3://other/feature-layer", root, None) is None
    assert "spine" in output_conflict("s3://bank/labels/out", root, "s3a://bank/labels")
    assert "spine" in output_conflict("/data/ts", "/data/features", "/data/ts/spine.parquet")
    assert output_conflict("/data/ts/v1", "/data/features", "/data/labels.parquet") is None


def test_a_previous_training_set_is_replaced(world, spine_file, tmp_path):
    out = tmp_path / "again"
    assert _cli(world, spine_file, str(out)) == 0
    (out / "stale-part.parquet").write_bytes(b"old")
    assert _cli(world, spine_file, str(out)) == 0
    assert not (out / "stale-part.parquet").exists()
    assert json.loads((out / "_manifest.json").read_text())["output"]["rows"] == len(pd.read_parquet(spine_file))


# --- finding 7 (part): an empty principal -------------------------------------------------------

def test_an_empty_principal_is_a_usage_error(world, spine_file, tmp_path, capsys):
    from featurebank.training.api import FeatureStore

    assert _cli(world, spine_file, str(tmp_path / "out"), "--as", "") == 2
    assert "--as" in capsys.readouterr().err
    assert _cli(world, spine_file, str(tmp_path / "out"), "--as", "  ") == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="principal"):
        FeatureStore(world.project, spark=world.spark).training_set(features=FEATURES.split(","),
                                                                    spine=str(spine_file), principal="")


# --- finding 14: the spine's columns keep their types -------------------------------------------

def _typed_spines(world):
    """The same spine three ways: naive (project wall clock), UTC, America/Sao_Paulo; plus a
    zoned label timestamp column that is not the spine's timestamp."""
    _, pdf = _spine(random.Random(22), world, DAYS[:8], n=20)
    instants = pdf["ts"].dt.tz_localize(TZ)
    spines = {"naive": pdf.assign(ts=pdf["ts"]),
              "utc": pdf.assign(ts=instants.dt.tz_convert("UTC")),
              "sao_paulo": pdf.assign(ts=instants.dt.tz_convert("America/Sao_Paulo"))}
    return {k: v.assign(labelled_at=instants.dt.tz_convert("Asia/Tokyo")) for k, v in spines.items()}


def test_cli_parquet_keeps_the_spines_arrow_types_never_int96(world, tmp_path):
    for kind, pdf in _typed_spines(world).items():
        spine = tmp_path / f"{kind}.parquet"
        pdf.to_parquet(spine)
        out = tmp_path / f"out_{kind}"
        assert _cli(world, spine, str(out)) == 0
        written = pq.read_table(out)
        given = pq.read_schema(spine)
        for field in given:
            if field.name.startswith("__"):
                continue
            want = field.type
            if str(want).startswith("timestamp[ns"):  # Spark keeps microseconds (notes/16-d.md)
                import pyarrow as pa

                want = pa.timestamp("us", tz=want.tz)
            assert written.schema.field(field.name).type == want, (kind, field.name)
        files = [f for f in out.iterdir() if f.suffix == ".parquet"]
        assert all("INT96" not in str(pq.ParquetFile(f).schema) for f in files)
        got = written.to_pandas().sort_values("row_id", kind="stable").reset_index(drop=True)
        expected = pdf.sort_values("row_id", kind="stable").reset_index(drop=True)
        for column in ("ts", "labelled_at"):
            assert list(got[column]) == list(expected[column]), (kind, column)  # same instants / wall clocks


def test_api_to_pandas_gives_back_the_spines_dtypes_and_values(world, tmp_path):
    from featurebank.training.api import FeatureStore

    store = FeatureStore(world.project, spark=world.spark)
    for kind, pdf in _typed_spines(world).items():
        frames = {"pandas spine": store.training_set(features=FEATURES.split(","), spine=pdf)}
        pdf.to_parquet(tmp_path / f"{kind}.parquet")
        frames["parquet spine"] = store.training_set(features=FEATURES.split(","), spine=str(tmp_path / f"{kind}.parquet"))
        frames["written"] = store.training_set(features=FEATURES.split(","), spine=pdf, out=tmp_path / f"w_{kind}")
        for how, frame in frames.items():
            got = store.to_pandas(frame).sort_values("row_id", kind="stable").reset_index(drop=True)
            expected = pdf.sort_values("row_id", kind="stable").reset_index(drop=True)
            for column in pdf.columns:
                assert got[column].dtype == expected[column].dtype, (kind, how, column)
            for column in ("ts", "labelled_at"):
                assert list(got[column]) == list(expected[column]), (kind, how, column)


# --- the registry of training sets --------------------------------------------------------------

def test_every_build_registers_a_copy_of_its_manifest_under_the_feature_root(world, spine_file, tmp_path):
    from featurebank.training.api import FeatureStore

    registry = Path(world.project.config.feature_root) / "_training_sets"
    before = set(registry.rglob("*.json")) if registry.exists() else set()
    assert _cli(world, spine_file, str(tmp_path / "cli")) == 0
    store = FeatureStore(world.project, spark=world.spark)
    store.write_training_set("card_fraud_v1", spine=str(spine_file), out=tmp_path / "named")
    store.write_training_set(spine=str(spine_file), out=tmp_path / "rebuilt", from_manifest=tmp_path / "named")
    added = sorted(set(registry.rglob("*.json")) - before)
    assert len(added) == 3
    by_content = {p.read_text(): p for p in added}
    for out in ("cli", "named", "rebuilt"):
        entry = by_content[(tmp_path / out / "_manifest.json").read_text()]
        assert entry.parent.parent == registry
    assert by_content[(tmp_path / "named" / "_manifest.json").read_text()].parent.name == "card_fraud_v1"
    assert by_content[(tmp_path / "rebuilt" / "_manifest.json").read_text()].parent.name == "card_fraud_v1"
    adhoc = by_content[(tmp_path / "cli" / "_manifest.json").read_text()].parent.name
    assert adhoc.startswith("features-") and adhoc != "card_fraud_v1"
