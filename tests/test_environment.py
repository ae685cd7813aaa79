"""The cluster's Python (deploy/environment.py): the archive EMR unpacks and the wheels Glue installs.

The wheelhouse is downloaded from the package index once into test-artifacts/ (pip needs the
network the first time); everything after that is local. That the archive really runs a
job on separate executors is proven in test_cluster.py.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from featurebank.deploy.environment import (
    INTERPRETER,
    PLATFORM_PACKAGES,
    _pack,
    build_environment,
    check_architecture,
    environment_conf,
    platform_tags,
    wheel_requirements,
    wheel_tag_problems,
)
from featurebank.deploy.package import build_wheel
from featurebank.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
ENVIRONMENT_CACHE = REPO / "test-artifacts" / "environments"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("environment")
    wheel = build_wheel(out)
    return wheel, build_environment(wheel, out, cache=ENVIRONMENT_CACHE)


def test_emr_and_emr_serverless_settings_make_the_archive_the_python_of_driver_and_executors():
    uri = "s3://bucket/artifacts/env-0123456789ab.tar.gz"
    common = {"spark.archives": f"{uri}#environment", "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python"}
    assert environment_conf("emr", uri) == {**common, "spark.yarn.appMasterEnv.PYSPARK_PYTHON": "./environment/bin/python"}
    assert environment_conf("emr-serverless", uri) == {
        **common, "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python"}
    with pytest.raises(ValueError):
        environment_conf("glue", uri)


def test_architectures_and_their_manylinux_tags():
    assert "manylinux_2_28_x86_64" in platform_tags("x86_64") and "manylinux2014_x86_64" in platform_tags("x86_64")
    assert "manylinux_2_17_aarch64" in platform_tags("aarch64")
    assert all(tag.endswith("_aarch64") for tag in platform_tags("aarch64"))
    with pytest.raises(UsageError, match="architecture 'arm64' is not supported; use one of x86_64, aarch64"):
        check_architecture("arm64")


def test_conf_names_the_architecture_and_refuses_an_unknown_one(example_project):
    from featurebank.definitions import load_project
    from featurebank.errors import ConfigError

    conf = example_project / "conf" / "prod.yaml"
    assert load_project(example_project, "prod").config.require_aws().emr.architecture == "x86_64"
    text = conf.read_text()
    conf.write_text(text.replace("  emr:\n", "  emr:\n    architecture: aarch64\n", 1))
    assert load_project(example_project, "prod").config.require_aws().emr.architecture == "aarch64"
    conf.write_text(text.replace("  emr:\n", "  emr:\n    architecture: arm64\n", 1))
    with pytest.raises(ConfigError, match="aws.emr.architecture: 'arm64' is not one of x86_64, aarch64"):
        load_project(example_project, "prod")


def test_the_archive_is_a_venv_on_the_nodes_python_with_every_requirement_and_no_spark(built):
    wheel, environment = built
    assert environment.archive.name.startswith("env-") and environment.archive.name.endswith(".tar.gz")
    names = {_name(p) for p in environment.wheels}
    required = {_name_of_requirement(r) for r in wheel_requirements(wheel)}
    assert required <= names, required - names
    assert "featurebank" in names and not names & set(PLATFORM_PACKAGES)

    with tarfile.open(environment.archive) as archive:
        members = archive.getmembers()
    paths = [m.name for m in members]
    assert paths == sorted(paths)  # deterministic order
    assert {m.mtime for m in members} == {0} and {(m.uid, m.gid) for m in members} == {(0, 0)}
    links = {m.name: m.linkname for m in members if m.issym()}
    assert links["bin/python"] == INTERPRETER and links["bin/python3"] == "python"
    assert "lib/python3.11/site-packages/featurebank/__init__.py" in paths
    assert "lib/python3.11/site-packages/great_expectations/__init__.py" in paths
    assert not any(p.startswith(("lib/python3.11/site-packages/pyspark", "lib/python3.11/site-packages/delta/",
                                 "lib/python3.11/site-packages/py4j")) for p in paths)
    assert not any(p.endswith(("direct_url.json", ".pyc")) for p in paths)  # no build machine paths, no bytecode
    assert "pyvenv.cfg" in paths


def test_the_same_wheels_pack_to_the_same_bytes_and_name(built, tmp_path):
    wheel, environment = built
    again = _pack(sorted(environment.wheels), tmp_path / "again", "x86_64")
    assert again.name == environment.archive.name
    assert again.read_bytes() == environment.archive.read_bytes()


def test_the_archive_runs_on_the_nodes_interpreter_without_anything_of_this_machine(built, tmp_path):
    import subprocess

    _, environment = built
    with tarfile.open(environment.archive) as archive:
        archive.extractall(tmp_path / "environment", filter="tar")
    code = ("import sys, featurebank, yaml, sqlglot, great_expectations, numpy, pyarrow, pandas, boto3; "
            "print(sys.prefix); print(featurebank.__file__)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(tmp_path / "environment" / "bin" / "python"), "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    prefix, location = done.stdout.split()
    assert prefix == str(tmp_path / "environment")
    assert location.startswith(str(tmp_path / "environment" / "lib" / "python3.11" / "site-packages"))


def test_a_wheel_for_another_architecture_or_python_is_named(tmp_path):
    site = tmp_path / "site-packages"
    for name, tags in (("numpy-2.0.dist-info", ["cp311-cp311-manylinux_2_17_aarch64"]),
                       ("pure-1.0.dist-info", ["py3-none-any"]),
                       ("cryptography-1.0.dist-info", ["cp311-abi3-manylinux_2_28_x86_64"]),
                       ("old-1.0.dist-info", ["cp310-cp310-manylinux2014_x86_64"]),
                       ("mac-1.0.dist-info", ["cp311-cp311-macosx_11_0_arm64"])):
        (site / name).mkdir(parents=True)
        (site / name / "WHEEL").write_text("Wheel-Version: 1.0\n" + "".join(f"Tag: {t}\n" for t in tags))
    problems = wheel_tag_problems(site, "x86_64")
    assert [p.split(" ")[0] for p in problems] == ["mac-1.0.dist-info", "numpy-2.0.dist-info", "old-1.0.dist-info"]
    assert problems[1] == "numpy-2.0.dist-info is tagged cp311-cp311-manylinux_2_17_aarch64, not cp311 manylinux x86_64"


def _name(wheel: Path) -> str:
    return wheel.name.split("-")[0].replace("_", "-").lower()


def _name_of_requirement(requirement: str) -> str:
    import re

    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].replace("_", "-").lower()


def test_the_emr_serverless_containerfile_installs_the_same_wheels_without_an_index():
    import re

    text = (REPO / "Containerfile.emr-serverless").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and base.group(1).startswith("public.ecr.aws/emr-serverless/spark/emr-7.")
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.MULTILINE)
    assert "COPY dist/*.whl " in text  # what `featurebank package --out dist` writes
    install = next(line for line in text.splitlines() if "pip install" in line)
    assert "python3.11 -m pip install" in install and "--no-index" in install
    assert not re.search(r"pyspark|delta-spark|py4j", install)
    assert "ENV PYSPARK_PYTHON=/usr/bin/python3.11" in text
    assert text.rstrip().splitlines()[-1] == "USER hadoop:hadoop"  # EMR Serverless runs images as hadoop


def test_package_without_environment_writes_only_the_wheel_bundle_and_scripts(example_project, tmp_path, capsys):
    from featurebank.cli import main

    assert main(["package", "--project", str(example_project), "--out", str(tmp_path / "dist"), "--no-environment"]) == 0
    listed = sorted(Path(line).name for line in capsys.readouterr().out.splitlines())
    assert len(listed) == 5 and not any(name.startswith("env-") for name in listed)
    assert [name for name in listed if name.endswith(".whl")] == [n for n in listed if n.startswith("featurebank-0")]
