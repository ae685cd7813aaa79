"""The Python a cluster runs featurebank with: a wheelhouse and a packed environment archive.

`--py-files` puts our wheel on the path but installs none of its requirements (PyYAML,
sqlglot, great-expectations, ...), so a job on EMR dies at import. What ships instead:

- a **wheelhouse**: featurebank's wheel and every runtime requirement as cp311 manylinux
  wheels for the target architecture (`pip download --only-binary=:all: --platform ...`),
  pinned to the versions installed where `package` runs (what was tested is what ships).
  pyspark, delta-spark and py4j are never in it: the platform provides them, and its jars
  must match its Python bindings. Glue installs these wheels from S3 (`--no-index`).
- an **environment archive** `env-<hash12>.tar.gz` for EMR on EC2 (YARN) and EMR Serverless
  (`spark.archives=...#environment`, `PYSPARK_PYTHON=./environment/bin/python`): a venv
  layout whose `bin/python` is a symlink to `/usr/bin/python3.11` (Amazon Linux 2023, which
  EMR 7.x runs, ships it there) and whose `lib/python3.11/site-packages` holds the
  wheelhouse installed with `pip install --target --no-deps`. Built without a venv on the
  build machine, so an aarch64 (Graviton) archive builds on x86_64 too. The tar is
  deterministic (sorted entries, mtime 0, owner 0, normalised modes, gzip header mtime 0):
  the same wheelhouse and wheel give the same bytes, hence the same name.

Downloads need the package index (once per requirement set; cached under `cache_dir()`).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from featurebank.definitions.config import EMR_ARCHITECTURES as ARCHITECTURES
from featurebank.errors import RuntimeFailure, UsageError

PLATFORM_PACKAGES = ("pyspark", "delta-spark", "py4j")  # the platform's, matching its jars
INTERPRETER = "/usr/bin/python3.11"  # where Amazon Linux 2023 (EMR 7.x) installs Python 3.11
PYTHON_VERSION = "3.11"
# Amazon Linux 2023 has glibc 2.34; manylinux_2_28 is the newest tag the pinned wheels need.
MANYLINUX_GLIBC_MINORS = range(28, 4, -1)
CACHE_ENV = "FEATUREBANK_CACHE_DIR"
ARCHIVE_ALIAS = "environment"  # the directory name executors see: ./environment/bin/python
_GZIP_LEVEL = 6  # 9 takes twice as long for 1% less


@dataclass(frozen=True)
class Environment:
    """What `build_environment` wrote into its `out_dir`."""

    architecture: str
    archive: Path  # env-<hash12>.tar.gz
    wheels: tuple[Path, ...]  # the wheelhouse: featurebank's wheel and every requirement, sorted by name


def cache_dir() -> Path:
    """Where wheelhouses and archives are kept between builds: $FEATUREBANK_CACHE_DIR, else
    ~/.cache/featurebank/environments."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "featurebank" / "environments"


def platform_tags(architecture: str) -> list[str]:
    """pip's `--platform` values for `architecture`: every manylinux tag a wheel for Amazon
    Linux 2023 may carry (pip does not widen `manylinux_2_28` to older tags by itself)."""
    check_architecture(architecture)
    tags = [f"manylinux_2_{minor}_{architecture}" for minor in MANYLINUX_GLIBC_MINORS]
    return tags + [f"manylinux2014_{architecture}"] + ([f"manylinux2010_{architecture}", f"manylinux1_{architecture}"]
                                                      if architecture == "x86_64" else [])


def check_architecture(architecture: str) -> None:
    """Raise UsageError unless `architecture` is one of ARCHITECTURES."""
    if architecture not in ARCHITECTURES:
        raise UsageError(f"architecture '{architecture}' is not supported; use one of {', '.join(ARCHITECTURES)} "
                         "(aws.emr.architecture in conf)")


def build_environment(wheel: Path, out_dir: Path, *, architecture: str = "x86_64",
                      cache: Path | None = None) -> Environment:
    """Write the wheelhouse (beside `wheel`, in `out_dir`) and `out_dir/env-<hash12>.tar.gz`.

    `wheel` is featurebank's wheel (package.build_wheel); its `Requires-Dist` are resolved to
    cp311 manylinux wheels for `architecture`, pinned to this environment's installed
    versions. Wheelhouses are cached by requirement set, archives by wheelhouse and wheel.
    Raises UsageError for an unknown architecture, RuntimeFailure when pip cannot find
    wheels (no network, no manylinux wheel of a pinned version) or a platform package would
    ship.
    """
    check_architecture(architecture)
    cache = cache or cache_dir()
    out = _mkdir(Path(out_dir))
    requirements = wheel_requirements(wheel)
    pins = installed_pins()
    house = _wheelhouse(cache, requirements, pins, architecture)
    wheels = [*sorted(house.glob("*.whl")), wheel]
    key = _digest_text("\n".join([architecture, INTERPRETER, *(_file_sha(p) for p in wheels)]))
    cached = cache / "archives" / key
    archive = next(iter(sorted(cached.glob("env-*.tar.gz"))), None) if cached.is_dir() else None
    if archive is None:
        archive = _pack(wheels, cached, architecture)
    shipped = []
    for path in wheels:
        target = out / path.name
        if target.resolve() != path.resolve():
            _copy(path, target)
        shipped.append(target)
    target = out / archive.name
    _copy(archive, target)
    return Environment(architecture=architecture, archive=target, wheels=tuple(sorted(shipped, key=lambda p: p.name)))


def environment_conf(platform: str, archive_uri: str) -> dict[str, str]:
    """The Spark settings that make driver and executors run `./environment/bin/python` of
    the archive at `archive_uri` (platform `emr`: EMR on EC2 steps, YARN cluster mode;
    `emr-serverless`).

    YARN unpacks `spark.archives` into every container's working directory under the alias
    after `#`; the application master (the driver, in cluster mode) reads
    `spark.yarn.appMasterEnv.*`, executors `spark.executorEnv.*`. EMR Serverless reads the
    driver's variables from `spark.emr-serverless.driverEnv.*`.
    """
    python = f"./{ARCHIVE_ALIAS}/bin/python"
    conf = {"spark.archives": f"{archive_uri}#{ARCHIVE_ALIAS}", "spark.executorEnv.PYSPARK_PYTHON": python}
    if platform == "emr":
        conf["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] = python
    elif platform == "emr-serverless":
        conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] = python
    else:
        raise ValueError(f"no environment settings for platform {platform!r}")
    return conf


def wheel_requirements(wheel: Path) -> list[str]:
    """The `Requires-Dist` lines of a wheel's METADATA (extras' requirements left out)."""
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    return sorted(line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("Requires-Dist:") and "extra ==" not in line)


def installed_pins() -> list[str]:
    """`name==version` of every distribution installed here but featurebank and the
    platform's packages: pip's constraints, so the cluster gets the versions tested here."""
    pins = set()
    for dist in importlib.metadata.distributions():
        name = _normalise(dist.metadata["Name"] or "")
        if name and name != "featurebank" and name not in PLATFORM_PACKAGES and "+" not in dist.version:
            pins.add(f"{name}=={dist.version}")
    return sorted(pins)


def wheel_tag_problems(site_packages: Path, architecture: str) -> list[str]:
    """Each installed distribution under `site_packages` whose WHEEL tags are not pure Python
    nor cp311 manylinux for `architecture`, as a sentence; [] when all fit."""
    problems = []
    for wheel_file in sorted(site_packages.glob("*.dist-info/WHEEL")):
        fields = [line.split(":", 1) for line in wheel_file.read_text().splitlines() if ":" in line]
        tags = [value.strip() for key, value in fields if key.strip() == "Tag"]
        pure = all(tag.endswith("-none-any") for tag in tags)
        fits = any(_fits(tag, architecture) for tag in tags)
        if not tags or not (pure or fits):
            problems.append(f"{wheel_file.parent.name} is tagged {', '.join(tags) or 'nothing'}, "
                            f"not cp311 manylinux {architecture}")
    return problems


# --- building ------------------------------------------------------------------------------


def _wheelhouse(cache: Path, requirements: list[str], pins: list[str], architecture: str) -> Path:
    """The cached directory of requirement wheels for this requirement set, downloaded once."""
    key = _digest_text("\n".join([architecture, PYTHON_VERSION, *platform_tags(architecture), "--", *requirements,
                                  "--", *pins]))
    house = cache / "wheelhouses" / key
    if (house / ".complete").is_file():
        return house
    partial = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=_mkdir(cache / "wheelhouses")))
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "requirements.txt").write_text("\n".join(requirements) + "\n")
        (Path(scratch) / "constraints.txt").write_text("\n".join(pins) + "\n")
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(partial),
                   "--only-binary=:all:", "--implementation", "cp", "--python-version", PYTHON_VERSION,
                   "--abi", "cp311", *(f"--platform={tag}" for tag in platform_tags(architecture)),
                   "-r", str(Path(scratch) / "requirements.txt"), "-c", str(Path(scratch) / "constraints.txt")]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeFailure(
            f"pip could not download cp311 manylinux {architecture} wheels for featurebank's requirements "
            f"({_last_lines(done.stderr)}); check that the package index is reachable (pip's own configuration "
            "applies) and that every pinned version has a manylinux wheel for this architecture")
    shipped_platform = sorted(p.name for p in partial.glob("*.whl") if _normalise(p.name.split("-")[0]) in PLATFORM_PACKAGES)
    if shipped_platform:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeFailure(f"a requirement of featurebank pulls in {', '.join(shipped_platform)}, which the "
                             "platform provides; drop that requirement, the cluster's jars must match its own bindings")
    (partial / ".complete").write_text("")
    if house.exists():
        shutil.rmtree(partial, ignore_errors=True)  # another build finished first; same content
    else:
        partial.rename(house)
    return house


def _pack(wheels: list[Path], into: Path, architecture: str) -> Path:
    """Install `wheels` into a venv layout and write it as a deterministic tar.gz in `into`."""
    _mkdir(into.parent)
    with tempfile.TemporaryDirectory(dir=into.parent) as scratch:
        root = Path(scratch) / "venv"
        site = root / "lib" / f"python{PYTHON_VERSION}" / "site-packages"
        pinned = [f"{_dist_name(w)}=={_dist_version(w)}" for w in wheels]
        # by name from --find-links, not by file path: a path install records a direct_url.json
        # holding this machine's path, which would make the archive differ per build directory
        command = [sys.executable, "-m", "pip", "--isolated", "install", "--quiet", "--no-index", "--no-deps",
                   "--no-compile", "--only-binary=:all:", "--implementation", "cp", "--python-version",
                   PYTHON_VERSION, "--abi", "cp311", *(f"--platform={t}" for t in platform_tags(architecture)),
                   "--find-links", str(wheels[0].parent), "--find-links", str(wheels[-1].parent),
                   "--target", str(site), *pinned]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeFailure(f"pip could not install the wheelhouse into the environment ({_last_lines(done.stderr)}); "
                                 f"delete {into.parent.parent} to rebuild it from the index")
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts whose shebang names this machine's Python
        problems = wheel_tag_problems(site, architecture)
        if problems:
            raise RuntimeFailure("the environment would hold wheels the cluster cannot load: " + "; ".join(problems))
        (root / "bin").mkdir()
        os.symlink(INTERPRETER, root / "bin" / "python")
        os.symlink("python", root / "bin" / "python3")
        os.symlink("python", root / "bin" / f"python{PYTHON_VERSION}")
        os.symlink("lib", root / "lib64")
        (root / "pyvenv.cfg").write_text(f"home = {Path(INTERPRETER).parent}\ninclude-system-site-packages = false\n"
                                         f"version = {PYTHON_VERSION}\n")
        data = _tar_gz(root)
    _mkdir(into)
    target = into / f"env-{hashlib.sha256(data).hexdigest()[:12]}.tar.gz"
    target.write_bytes(data)
    return target


def _tar_gz(root: Path) -> bytes:
    """`root`'s tree as tar.gz bytes, identical for identical trees."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=_GZIP_LEVEL) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
                info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                executable = info.isdir() or info.mode & 0o111
                info.mode = 0o777 if info.issym() else 0o755 if executable else 0o644
                if info.isfile():
                    with path.open("rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    return buffer.getvalue()


# --- helpers -------------------------------------------------------------------------------


def _fits(tag: str, architecture: str) -> bool:
    python, abi, platform = tag.split("-")
    return python.startswith(("cp3", "py3")) and abi in ("cp311", "abi3", "none") and platform in platform_tags(architecture)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(wheel: Path) -> str:
    return _normalise(wheel.name.split("-")[0])


def _dist_version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{path.name}:{digest.hexdigest()}"


def _digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _copy(source: Path, target: Path) -> None:
    if target.exists() and target.stat().st_size == source.stat().st_size:
        return  # content-named (wheel names carry versions, the archive its hash)
    tmp = target.with_name(target.name + ".tmp")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    tmp.replace(target)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _last_lines(text: str, count: int = 4) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no output"
