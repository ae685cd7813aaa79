"""Build what a cluster runs: the library wheel, the project bundle, the entry scripts.

Every artifact is named by a hash of its content and written byte-for-byte reproducibly
(sorted zip entries, fixed timestamps and permissions), so the same repository always gives
the same names and bytes, and a deploy can tell from a name alone that nothing changed.

- `featurebank-<version>+<hash12>-py3-none-any.whl`: the `featurebank` package as a pure
  Python wheel, built here rather than by `pip wheel` so that it is reproducible without
  SOURCE_DATE_EPOCH tricks, needs no network or build isolation, and never writes `build/`
  into a shared working tree. Spark and Delta are left out of its requirements: every
  target (Glue 5.1, EMR 7.x, spark-submit) provides them, and pip must not replace them.
- `featurebank-project-<hash12>.zip`: the project's `features/` and `conf/` (a project is any
  directory holding those two; nothing else of it is read).
- `run_group-<hash12>.py`, `training_set-<hash12>.py`, `glue_run_group-<hash12>.py`: the
  thin entry points, shipped inside the `featurebank` package (`featurebank/deploy/jobs/`),
  so they always match the wheel beside them.
- with `python=`: the Python the wheel needs on the cluster (`environment.py`): the
  `env-<hash12>.tar.gz` archive EMR and EMR Serverless unpack as `./environment`, and/or the
  wheelhouse of requirement wheels Glue installs without an index.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from featurebank.errors import UsageError

PythonShipping = Literal["archive", "wheels", "both"]  # what of environment.py a target needs

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
ENTRY_SCRIPTS = ("run_group", "training_set", "glue_run_group")
PLATFORM_PROVIDED = ("pyspark", "delta-spark")  # never pip-installed over the platform's own
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}


@dataclass(frozen=True)
class Artifacts:
    """The files `build_artifacts` wrote, all inside `out_dir`."""

    out_dir: Path
    wheel: Path
    bundle: Path
    scripts: tuple[tuple[str, Path], ...]  # (entry name, file), e.g. ("run_group", run_group-ab12.py)
    environment: Path | None = None  # env-<hash12>.tar.gz (EMR, EMR Serverless)
    requirements: tuple[Path, ...] = ()  # the wheel's requirements as wheels (Glue), sorted

    def script(self, name: str) -> Path:
        """The file of entry script `name` (one of ENTRY_SCRIPTS)."""
        return dict(self.scripts)[name]

    def files(self) -> tuple[Path, ...]:
        """Every artifact, wheel first."""
        extra = (self.environment,) if self.environment else ()
        return (self.wheel, self.bundle, *(path for _, path in self.scripts), *extra, *self.requirements)


def build_artifacts(project_root: Path | str, out_dir: Path | str, *, python: PythonShipping | None = None,
                    architecture: str = "x86_64") -> Artifacts:
    """Write the wheel, the project bundle and the entry scripts into `out_dir`, and with
    `python` what the cluster's Python needs (`environment.build_environment` for
    `architecture`: the archive, the requirement wheels, or both).

    `project_root` must hold `features/` and `conf/` (it may live anywhere and hold nothing
    else). The entry scripts come from the featurebank package itself (`entry_script`).
    Same inputs give the same file names and bytes. Raises UsageError if the project is not
    one; RuntimeFailure if the environment cannot be built (environment.py).
    """
    root = Path(project_root).resolve()
    out = Path(out_dir)
    for part in ("features", "conf"):
        if not (root / part).is_dir():
            raise UsageError(f"{root} has no {part}/ directory; pass --project pointing at a featurebank project")
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(out)
    bundle = build_bundle(root, out)
    scripts = []
    for name in ENTRY_SCRIPTS:
        data = entry_script(name).read_bytes()
        target = out / f"{name}-{_digest(data)}.py"
        _write_if_changed(target, data)
        scripts.append((name, target))
    if python is None:
        return Artifacts(out_dir=out, wheel=wheel, bundle=bundle, scripts=tuple(scripts))
    from featurebank.deploy.environment import build_environment

    built = build_environment(wheel, out, architecture=architecture)
    return Artifacts(out_dir=out, wheel=wheel, bundle=bundle, scripts=tuple(scripts),
                     environment=built.archive if python in ("archive", "both") else None,
                     requirements=tuple(w for w in built.wheels if w.name != wheel.name)
                     if python in ("wheels", "both") else ())


def build_wheel(out_dir: Path) -> Path:
    """Write the `featurebank` package (`library_dir()`) as a reproducible wheel; return its path."""
    files = [(f"featurebank/{rel}", data) for rel, data in _tree(library_dir())]
    content_hash = _tree_hash(files)
    version = f"{_base_version()}+{content_hash}"
    dist_info = f"featurebank-{version}.dist-info"
    metadata = "\n".join(
        [
            "Metadata-Version: 2.1",
            "Name: featurebank",
            f"Version: {version}",
            "Summary: Declarative, point-in-time-correct feature pipelines on Apache Spark and Delta Lake",
            "Requires-Python: >=3.11",
            *(f"Requires-Dist: {req}" for req in _runtime_requirements()),
            "",
        ]
    )
    wheel_meta = "Wheel-Version: 1.0\nGenerator: featurebank.deploy.package\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entry_points = "[console_scripts]\nfeaturebank = featurebank.cli:main\n"
    files += [
        (f"{dist_info}/METADATA", metadata.encode()),
        (f"{dist_info}/WHEEL", wheel_meta.encode()),
        (f"{dist_info}/entry_points.txt", entry_points.encode()),
        (f"{dist_info}/top_level.txt", b"featurebank\n"),
    ]
    record = "".join(f"{name},sha256={_record_hash(data)},{len(data)}\n" for name, data in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    target = out_dir / f"featurebank-{version}-py3-none-any.whl"
    _write_if_changed(target, _zip_bytes(files))
    return target


def build_bundle(project_root: Path, out_dir: Path) -> Path:
    """Zip `features/` and `conf/` of a project reproducibly; return the zip's path."""
    files = [(f"{part}/{rel}", data) for part in ("features", "conf") for rel, data in _tree(project_root / part)]
    target = out_dir / f"featurebank-project-{_tree_hash(files)}.zip"
    _write_if_changed(target, _zip_bytes(files))
    return target


def library_dir() -> Path:
    """The directory of the `featurebank` package this process imported: what the wheel holds."""
    import featurebank

    return Path(featurebank.__file__).resolve().parent


def entry_script(name: str) -> Path:
    """The file of entry script `name` (one of ENTRY_SCRIPTS) in the package the wheel holds."""
    return library_dir() / "deploy" / "jobs" / f"{name}.py"


def open_bundle(ref: str | Path, workdir: Path | None = None) -> Path:
    """A project directory for `ref`: a directory as it is, or a bundle zip (local path or
    `s3://...`) extracted into `workdir` (default: a new temporary directory).

    This is how a job on a cluster turns `--project s3://.../featurebank-project-<h>.zip`
    into a directory `load_project` can read. Raises UsageError if `ref` is neither.
    """
    text = str(ref)
    if not text.startswith(("s3://", "s3a://")) and Path(text).is_dir():
        return Path(text)
    target = workdir or Path(tempfile.mkdtemp(prefix="featurebank-project-"))
    target.mkdir(parents=True, exist_ok=True)
    if text.startswith(("s3://", "s3a://")):
        from featurebank.io.files import download

        local = target / "_bundle.zip"
        download(text, local)
    else:
        local = Path(text)
        if not local.is_file():
            raise UsageError(f"project '{text}' is neither a directory nor a bundle zip; pass a project directory or featurebank-project-<hash>.zip")
    with zipfile.ZipFile(local) as archive:
        for member in archive.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise UsageError(f"bundle {text} holds an unsafe path '{member}'; rebuild it with `featurebank package`")
        archive.extractall(target)
    if local.parent == target and local.name == "_bundle.zip":
        local.unlink()
    return target


def sha256_hex(path: Path) -> str:
    """The sha256 of a file, hex (what deploy records in S3 metadata)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- helpers -------------------------------------------------------------------------------


def _tree(directory: Path) -> list[tuple[str, bytes]]:
    """(relative posix path, bytes) of every file below `directory`, sorted; caches skipped."""
    found = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in (".pyc", ".pyo"):
            found.append((rel.as_posix(), path.read_bytes()))
    return sorted(found)


def _tree_hash(files: Iterable[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:12]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _zip_bytes(files: list[tuple[str, bytes]]) -> bytes:
    with tempfile.SpooledTemporaryFile() as buffer:
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in sorted(files):
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                info.create_system = 3
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data, compresslevel=9)
        buffer.seek(0)
        return buffer.read()


def _write_if_changed(target: Path, data: bytes) -> None:
    if target.exists() and target.read_bytes() == data:
        return
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def _base_version() -> str:
    try:
        version = importlib.metadata.version("featurebank")
    except importlib.metadata.PackageNotFoundError:
        version = "0.0.0"
    return version.split("+", 1)[0]


def _runtime_requirements() -> list[str]:
    """featurebank's install requirements without extras and without Spark/Delta."""
    try:
        requires = importlib.metadata.requires("featurebank") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    kept = []
    for req in requires:
        if "extra ==" in req:
            continue
        name = re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")
        if name not in PLATFORM_PROVIDED:
            kept.append(req)
    return sorted(kept)
