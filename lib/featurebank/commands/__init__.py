"""Command handlers: one small function per CLI command, each calling one library function.

Each handler takes the parsed arguments and returns an exit code; it may raise any
`featurebank.errors` type, which `cli.main` maps to an exit code. Handlers live in one
module per area (definitions, runs, training, catalog, deploy) and are re-exported here.
"""

from __future__ import annotations

import argparse


def _not_yet(name: str) -> int:
    from featurebank.errors import UsageError

    raise UsageError(f"`featurebank {name}` is not available in this build yet")


def validate(args: argparse.Namespace) -> int:
    from featurebank.commands.definitions import validate as handler

    return handler(args)


def plan(args: argparse.Namespace) -> int:
    from featurebank.commands.definitions import plan as handler

    return handler(args)


def run(args: argparse.Namespace) -> int:
    from featurebank.commands.runs import run as handler

    return handler(args)


def history(args: argparse.Namespace) -> int:
    from featurebank.commands.runs import history as handler

    return handler(args)


def training_set(args: argparse.Namespace) -> int:
    from featurebank.commands.training import training_set as handler

    return handler(args)


def list_(args: argparse.Namespace) -> int:
    from featurebank.commands.catalog import list_ as handler

    return handler(args)


def describe(args: argparse.Namespace) -> int:
    from featurebank.commands.catalog import describe as handler

    return handler(args)


def docs(args: argparse.Namespace) -> int:
    from featurebank.commands.catalog import docs as handler

    return handler(args)


def package(args: argparse.Namespace) -> int:
    from featurebank.commands.deploy import package as handler

    return handler(args)


def deploy(args: argparse.Namespace) -> int:
    from featurebank.commands.deploy import deploy as handler

    return handler(args)


def iam_policy(args: argparse.Namespace) -> int:
    from featurebank.commands.deploy import iam_policy as handler

    return handler(args)


def grants(args: argparse.Namespace) -> int:
    from featurebank.commands.governance import grants as handler

    return handler(args)
