"""The one `group:feature` resolver (definitions/refs.py), as validate and the training API use it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from featurebank.definitions import load_project
from featurebank.definitions.refs import resolve_features, resolve_references
from featurebank.errors import DefinitionError

CORPUS_BASE = Path(__file__).resolve().parent / "definitions_corpus" / "_base"
GROUPS = ("kind: feature_group\nname: spend\nentity: customer\nsource: txns\naggregations:\n"
          "  - {name: spend_sum, expr: amount, function: sum, windows: [7d, 30d]}\n"
          "---\nkind: feature_group\nname: spend_copy\nentity: customer\nsource: txns\naggregations:\n"
          "  - {name: spend_sum, expr: amount, function: sum, windows: [7d]}\n")


def project_with(tmp_path: Path, extra: str = ""):  # type: ignore[no-untyped-def]
    root = tmp_path / "project"
    shutil.copytree(CORPUS_BASE, root)
    (root / "features" / "groups.yaml").write_text(GROUPS + extra)
    return root


def test_a_reference_with_spaces_is_refused_by_validate_and_by_the_training_api_alike(tmp_path: Path) -> None:
    # Before: the training API stripped " spend:spend_sum_7d" and validate called ' spend' an unknown group.
    root = project_with(tmp_path, "---\nkind: training_set\nname: fraud\nfeatures:\n  - spend:spend_sum_7d\n"
                                  "  - \" spend:spend_sum_30d\"\n")
    with pytest.raises(DefinitionError) as raised:
        load_project(root, "local")
    assert str(raised.value) == ("features/groups.yaml:19: ' spend:spend_sum_30d' is not a feature reference; "
                                 "write <group>:<feature> or <group>:*")
    project = load_project(project_with(tmp_path / "ok"), "local")
    with pytest.raises(DefinitionError, match="' spend:spend_sum_30d' is not a feature reference"):
        resolve_features(project, ["spend:spend_sum_7d", " spend:spend_sum_30d"])


def test_training_set_and_ad_hoc_references_get_the_same_sentences_naming_who_asked(tmp_path: Path) -> None:
    root = project_with(tmp_path, "---\nkind: training_set\nname: fraud\nfeatures: [\"spnd:spend_sum_7d\"]\n")
    with pytest.raises(DefinitionError) as raised:
        load_project(root, "local")
    assert "training set 'fraud' names feature group 'spnd', which is not defined; did you mean 'spend'?" in str(raised.value)
    project = load_project(project_with(tmp_path / "ok"), "local")
    problems = resolve_references(project, ["spnd:spend_sum_7d", "xyz:a"]).problems
    assert problems == (
        (0, "the feature list names feature group 'spnd', which is not defined; did you mean 'spend'?"),
        (1, "the feature list names feature group 'xyz', which is not defined; fix the reference "
            "(groups: spend, spend_copy)"),
    )


def test_full_names_resolve_a_clash_and_a_feature_asked_twice_is_selected_once(tmp_path: Path) -> None:
    project = load_project(project_with(tmp_path), "local")
    clash = resolve_references(project, ["spend:*", "spend_copy:spend_sum_7d"])
    assert clash.problems == ((1, "the feature list gets feature 'spend_sum_7d' from both 'spend' and 'spend_copy'; "
                                  "build it with --full-names (columns <group>__<feature>) or drop one of them"),)
    columns = [s.column for s in resolve_features(project, ["spend:*", "spend_copy:spend_sum_7d"], full_names=True)]
    assert columns == ["spend__spend_sum_7d", "spend__spend_sum_30d", "spend_copy__spend_sum_7d"]
    twice = resolve_features(project, ["spend:spend_sum_7d", "spend:*"])
    assert [s.reference for s in twice] == ["spend:spend_sum_7d", "spend:spend_sum_30d"]


def test_an_empty_request_is_refused_with_what_to_give(tmp_path: Path) -> None:
    project = load_project(project_with(tmp_path), "local")
    with pytest.raises(DefinitionError, match="no features requested; name a training set or give group:feature"):
        resolve_features(project, [])
