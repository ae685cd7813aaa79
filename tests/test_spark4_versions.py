"""The version tables per lane (issue 24): Glue 6.0 runs the Spark 4.1 lane, Glue 5.x the 3.5 lane,
and `doctor` refuses a job whose wheels are the other lane's with one sentence naming both sides."""

from __future__ import annotations

import json

import boto3
import pytest

from aws_fixtures import REGION, aws, frozen_library, library_snapshot, moto_endpoint  # noqa: F401  (fixtures)
from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.deploy.versions import (EMR, GLUE, GLUE_FOR_LANE, LANES, emr_runtime, lane_fix, lane_for_python,
                                         lane_problems, mismatches, wheels_python)

ROLE = "arn:aws:iam::123456789012:role/featurebank-prod-job"
WHEELS = {
    "3.11": "s3://a/w/featurebank-0.1.0-py3-none-any.whl,s3://a/w/numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl,"
            "s3://a/w/pyarrow-21.0.0-cp311-cp311-manylinux_2_28_x86_64.whl,s3://a/w/cryptography-45.0.0-cp37-abi3-manylinux_2_28_x86_64.whl",
    "3.13": "s3://a/w/featurebank-0.1.0-py3-none-any.whl,s3://a/w/numpy-2.2.6-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
}


def test_each_lane_runs_on_its_glue_release_and_on_no_other():
    assert LANES["3.5"].python == ("3.11",) and LANES["4.1"].python == ("3.13",)
    assert GLUE["6.0"].spark == "4.1.1" and GLUE["6.0"].python == ("3.13",) and GLUE["6.0"].delta.startswith("4.")
    for lane, glue in GLUE_FOR_LANE.items():
        assert mismatches(GLUE[glue], LANES[lane]) == [], (lane, glue)
    assert mismatches(GLUE["5.0"], LANES["3.5"]) == []
    for glue in ("4.0", "5.0", "5.1"):
        assert mismatches(GLUE[glue], LANES["4.1"]), glue
    assert mismatches(GLUE["6.0"], LANES["3.5"])


def test_the_first_emr_release_with_spark4_runs_spark_40_so_neither_lane():
    runtime = emr_runtime("emr-spark-8.0.0")
    assert runtime is EMR["emr-spark-8.0.0"] and runtime.spark.startswith("4.0")
    assert "Spark 4.0.2, featurebank is tested with Spark 4.1.x" in "; ".join(mismatches(runtime, LANES["4.1"]))
    assert "another Spark major" in "; ".join(mismatches(runtime, LANES["3.5"]))
    assert emr_runtime("emr-7.13.0") is not None and not mismatches(emr_runtime("emr-7.13.0"), LANES["3.5"])


def test_the_wheels_tell_the_lane_and_abi3_or_pure_wheels_tell_nothing():
    assert wheels_python(WHEELS["3.11"]) == {"3.11"}
    assert wheels_python(WHEELS["3.13"]) == {"3.13"}
    assert wheels_python("s3://a/featurebank-0.1.0-py3-none-any.whl,s3://a/x-1-cp37-abi3-linux_x86_64.whl") == set()
    assert wheels_python("") == set() and wheels_python(" , ") == set()
    assert wheels_python(WHEELS["3.11"] + "," + WHEELS["3.13"]) == {"3.11", "3.13"}
    assert lane_for_python("3.13") == "4.1" and lane_for_python("3.11") == "3.5" and lane_for_python("3.12") is None


@pytest.mark.parametrize("glue,lane,other", [("6.0", "3.5", "5.1"), ("5.1", "4.1", "6.0")])
def test_a_release_refuses_the_other_lanes_wheels_with_a_sentence(glue, lane, other):
    problems = lane_problems(GLUE[glue], lane, f"the job's wheels are cp{LANES[lane].python[0].replace('.', '')}")
    assert problems[-1] == (f"the job's wheels are cp{LANES[lane].python[0].replace('.', '')}, so it carries "
                            f"featurebank's Spark {lane} lane (Spark {lane}, Python {LANES[lane].python[0]})")
    assert f"AWS Glue {glue} runs Spark {GLUE[glue].spark}" in problems[0]
    assert any(f"offers Python {GLUE[glue].python[0]}" in p for p in problems)
    fix = lane_fix(GLUE[glue], lane)
    assert fix.startswith(f"run featurebank's Spark {lane} lane's wheels on AWS Glue {other} (Spark {GLUE[other].spark}")
    assert f"or package featurebank's Spark {'4.1' if lane == '3.5' else '3.5'} lane's wheels" in fix


def _job(group: str, glue_version: str, python: str) -> None:
    boto3.client("glue", region_name=REGION).create_job(
        Name=f"featurebank-prod-{group}", Role=ROLE, GlueVersion=glue_version,
        Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"},
        DefaultArguments={"--additional-python-modules": WHEELS[python]})


def _versions_lines(capsys, project) -> list[dict]:
    main(["doctor", "--env", "prod", "--project", str(project), "--json"])
    report = json.loads(capsys.readouterr().out)
    return [c for c in report["checks"] if c["check"].startswith("Glue version")]


def test_doctor_refuses_a_glue_60_job_with_the_35_lanes_wheels_and_passes_the_41_lanes(aws, example_project, capsys):
    groups = sorted(load_project(example_project, "prod").groups)
    _job(groups[0], "6.0", "3.11")  # the careless upgrade: Glue version bumped, wheels left as they were
    _job(groups[1], "6.0", "3.13")
    _job(groups[2], "5.1", "3.13")  # the reverse: the 4.1 lane's wheels on Glue 5.1
    checks = {c["check"]: c for c in _versions_lines(capsys, example_project)}
    bad = checks[f"Glue version 6.0 (featurebank-prod-{groups[0]})"]
    assert bad["status"] == "fail"
    assert bad["detail"].startswith("another Spark major: AWS Glue 6.0 runs Spark 4.1.1, featurebank is tested with "
                                    "Spark 3.5.x")
    assert bad["detail"].endswith("; the job's wheels are cp311, so it carries featurebank's Spark 3.5 lane "
                                  "(Spark 3.5, Python 3.11)")
    assert "offers Python 3.13, featurebank's wheel and environment are built for Python 3.11" in bad["detail"]
    assert "run featurebank's Spark 3.5 lane's wheels on AWS Glue 5.1" in bad["fix"]
    good = checks[f"Glue version 6.0 (featurebank-prod-{groups[1]})"]
    assert good["status"] == "pass", good
    assert good["detail"] == ("Spark 4.1.1, Delta 4.2.0, Python 3.13, Java 17 (the job's wheels are cp313: "
                              "featurebank's Spark 4.1 lane: Spark 4.1, Delta 4.3, Python 3.13, Java 17)")
    reverse = checks[f"Glue version 5.1 (featurebank-prod-{groups[2]})"]
    assert reverse["status"] == "fail"
    assert reverse["detail"].endswith("the job's wheels are cp313, so it carries featurebank's Spark 4.1 lane "
                                      "(Spark 4.1, Python 3.13)")
    assert "run featurebank's Spark 4.1 lane's wheels on AWS Glue 6.0" in reverse["fix"]
