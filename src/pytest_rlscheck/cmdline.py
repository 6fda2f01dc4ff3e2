"""Option values pytest read as test paths.

pytest picks the rootdir and the config file before it loads plugins, so in
``--rlscheck-seed other/seed.sql`` it does not yet know that ``other/seed.sql`` is an option
value and takes it for a test path: the rootdir, and the ``pyproject.toml`` that holds
``[tool.rlscheck]``, may then come from ``other/``. The ``--rlscheck-seed=other/seed.sql``
form is read right. This module finds the first form when it changed pytest's choice.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["VALUE_OPTIONS", "misread_values"]

#: Our options that take a value.
VALUE_OPTIONS = (
    "--rlscheck-migrations",
    "--rlscheck-seed",
    "--rlscheck-pg-bin",
    "--rlscheck-dsn",
    "--rlscheck-report",
    "--rlscheck-fail-on",
    "--rlscheck-fuzz-examples",
)


def split_values(args: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(option, value) pairs given as two arguments, and the arguments without them."""
    pairs: list[tuple[str, str]] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        if args[i] in VALUE_OPTIONS and i + 1 < len(args):
            pairs.append((args[i], args[i + 1]))
            i += 2
            continue
        rest.append(args[i])
        i += 1
    return pairs, rest


def misread_values(config: Any) -> str | None:
    """Why pytest's rootdir or config file came from one of our option values, or None.

    pytest's choice is recomputed twice with the same parser, from the arguments it saw
    (PYTEST_ADDOPTS first): with our values as it read them, and without them. Only a
    difference between the two is reported."""
    addopts = shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    args = addopts + list(config.invocation_params.args)
    pairs, rest = split_values(args)
    if not pairs:
        return None
    try:
        # pytest's early parse drops the option it does not know and keeps the value as a path
        as_read = _setup(config, rest + [value for _, value in pairs])
        without = _setup(config, rest)
    except Exception:  # pytest's internals moved: no judgement rather than a wrong one
        return None
    actual = (Path(config.rootpath), Path(config.inipath) if config.inipath else None)
    if as_read == without or actual != as_read:
        return None  # the values changed nothing, or pytest (a newer one) read them right
    rootpath, inipath = without
    given = " ".join(f"{option} {value}" for option, value in pairs)
    fixed = " ".join(f"{option}={value}" for option, value in pairs)
    return (
        f"pytest took the value in `{given}` for a test path: it chose the rootdir {config.rootpath} "
        f"and the config file {config.inipath or '(none)'} from it, instead of {rootpath} and "
        f"{inipath or '(none)'}, so the wrong [tool.rlscheck] would be read. pytest chooses them before "
        f"plugins load. Write the option with '=': {fixed}"
    )


def _setup(config: Any, args: list[str]) -> tuple[Path, Path | None]:
    """(rootdir, config file) as pytest determines them for ``args``."""
    from _pytest.config.findpaths import determine_setup

    ns = config._parser.parse_known_args(args)
    kwargs = {
        "inifile": ns.inifilename,
        "args": ns.file_or_dir,
        "rootdir_cmd_arg": ns.rootdir or None,
        "invocation_dir": Path(config.invocation_params.dir),
    }
    try:
        rootpath, inipath, *_ = determine_setup(override_ini=ns.override_ini, **kwargs)
    except TypeError:  # pytest < 8.1
        rootpath, inipath, *_ = determine_setup(**kwargs)
    return Path(rootpath), Path(inipath) if inipath else None
