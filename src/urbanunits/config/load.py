"""Loading a TOML config into the schema: type conversion, renamed keys, relative paths.

Relative paths are resolved against the project root (the parent of the ``configs/`` folder the
file sits in, or the file's own folder otherwise), so ``make`` and notebooks see the same files
whatever the working directory.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
import types
import typing
import warnings
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from urbanunits.config.checks import (
    _check,
)
from urbanunits.config.schema import (
    Config,
    LifeCircleConfig,
    PackagesConfig,
    SitesConfig,
    default_categories,
    default_config_path,
    default_site_subtypes,
)
from urbanunits.errors import ConfigError, InputFileError

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is float:
        return "a number"
    if tp is int:
        return "an integer"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if tp is Path:
        return "a file path (string)"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    return str(tp)


def _convert(tp: Any, value: Any, key: str, src: str, root: Path) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if (value is None or value == "") and type(None) in args:
            return None
        return _convert(non_none[0], value, key, src, root)

    def bad() -> ConfigError:
        return ConfigError(f"{src}: {key}", f"expected {_type_name(tp)}, got {value!r}",
                           "fix the value in the config (see configs/README.md)")

    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise bad()
        p = Path(value).expanduser()
        return p if p.is_absolute() else root / p
    if origin is list:
        if not isinstance(value, list):
            raise bad()
        return [_convert(args[0], v, f"{key}[{i}]", src, root) for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise ConfigError(f"{src}: {key}", f"expected a list of {len(args)} numbers, "
                              f"got {value!r}", "fix the value in the config")
        return tuple(_convert(a, v, f"{key}[{i}]", src, root)
                     for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise bad()
        return {str(k): _convert(args[1], v, f"{key}.{k}", src, root) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return _build(typing.cast(type, tp), value, key, src, root)
    raise bad()  # pragma: no cover - schema uses only the types above


def _renamed_level(sub: Any, key: str) -> Any:
    """Accept the 0.1 key ``level_min`` (renamed ``level_minutes``) for one release."""
    if isinstance(sub, dict) and "level_min" in sub:
        warnings.warn(f"lifecircle.categories.{key}.level_min is renamed level_minutes; the "
                      "old name will stop working in the next release", FutureWarning,
                      stacklevel=2)
        level = sub["level_min"]
        sub = {k: v for k, v in sub.items() if k != "level_min"}
        sub.setdefault("level_minutes", level)
    return sub


def _merge_categories(user: Any) -> Any:
    """Overlay the config's ``lifecircle.categories`` on the GB 50180-2018 defaults.

    A table for a default category changes only the keys it gives (``files`` added to the default
    clinic, a subtype's ``distance_m``...); subtypes merge the same way; a new key adds a
    category; ``enabled = false`` drops one.
    """
    if not isinstance(user, dict):
        return user  # the type check reports it
    merged: dict[str, Any] = {k: dataclasses.asdict(v) for k, v in default_categories().items()}
    for key, table in user.items():
        if key not in merged or not isinstance(table, dict):
            if isinstance(table, dict) and isinstance(table.get("subtypes"), dict):
                table = {**table, "subtypes": {
                    sk: _renamed_level(sv, f"{key}.subtypes.{sk}")
                    for sk, sv in table["subtypes"].items()}}
            merged[key] = table
            continue
        base = merged[key]
        for name, value in table.items():
            if name == "subtypes" and isinstance(value, dict):
                subs = dict(base["subtypes"])
                for sk, sv in value.items():
                    sv = _renamed_level(sv, f"{key}.subtypes.{sk}")
                    subs[sk] = ({**subs[sk], **sv} if sk in subs and isinstance(sv, dict)
                                else sv)
                base["subtypes"] = subs
            else:
                base[name] = value
    return merged


def _enabled_only(lc: LifeCircleConfig) -> LifeCircleConfig:
    cats = {}
    for key, cat in lc.categories.items():
        if cat.enabled:
            subs = {k: st for k, st in cat.subtypes.items() if st.enabled}
            cats[key] = dataclasses.replace(cat, subtypes=subs)
    return dataclasses.replace(lc, categories=cats)


def _deprecated_packages_keys(data: dict[str, Any], src: str) -> dict[str, Any]:
    """Read ``packages.old_before_year`` (renamed) for one release, as ``built_by_year``.

    ``old_before_year = N`` meant "built before N"; for whole years that is exactly
    ``built_by_year = N - 1``, so an old config keeps its results, and the warning names the new
    key and value to write.
    """
    if "old_before_year" not in data:
        return data
    data = dict(data)
    old = data.pop("old_before_year")
    if isinstance(old, bool) or not isinstance(old, int):
        raise ConfigError(f"{src}: packages.old_before_year", f"expected an integer, got {old!r}",
                          "replace it with packages.built_by_year (built in or before ⇒ old)")
    if "built_by_year" in data:
        raise ConfigError(f"{src}: packages.old_before_year",
                          "is given together with its replacement packages.built_by_year",
                          "delete old_before_year")
    data["built_by_year"] = old - 1
    logger.warning("%s: packages.old_before_year is deprecated and will be removed in the next "
                   "release; read as built_by_year = %d (built in or before ⇒ old) — write "
                   "built_by_year = %d instead", src, old - 1, old - 1)
    return data


def _build(cls: type, data: dict[str, Any], prefix: str, src: str, root: Path) -> Any:
    if cls is LifeCircleConfig and "categories" in data:
        data = {**data, "categories": _merge_categories(data["categories"])}
    if cls is PackagesConfig:
        data = _deprecated_packages_keys(data, src)
    if cls is SitesConfig and isinstance(data.get("subtypes"), dict):
        # A subtype's table changes only the keys it gives; the other defaults stay.
        base = {k: dataclasses.asdict(v) for k, v in default_site_subtypes().items()}
        data = {**data, "subtypes": {**base, **{
            k: ({**base[k], **v} if k in base and isinstance(v, dict) else v)
            for k, v in data["subtypes"].items()}}}
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{src}: {full}", "unknown key",
                              f"check the spelling; known keys here: {known}")
        kwargs[key] = _convert(hints[key], value, full, src, root)
    for name, f in fields.items():
        if (name not in kwargs and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING):
            full = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"{src}: {full}", "missing required key",
                              "add it (see configs/README.md)")
    obj = cls(**kwargs)
    return _enabled_only(obj) if cls is LifeCircleConfig else obj


def _absolutize(obj: Any, root: Path) -> Any:
    """Resolve relative paths left at their defaults against the project root."""
    if isinstance(obj, Path):
        return obj if obj.is_absolute() else root / obj
    if isinstance(obj, list):
        return [_absolutize(v, root) for v in obj]
    if isinstance(obj, dict):
        return {k: _absolutize(v, root) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: _absolutize(getattr(obj, f.name), root)
                   for f in dataclasses.fields(obj) if f.name != "source"}
        return dataclasses.replace(obj, **changes)
    return obj


def _root_for(path: Path) -> Path:
    path = path.resolve()
    return path.parent.parent if path.parent.name == "configs" else path.parent



def _read_utf8(path: Path) -> str:
    """The config's text; a UTF-8 byte-order mark (Windows Notepad) is dropped, not refused."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(path, "the file is UTF-16 (Notepad's 'Unicode'), TOML must be UTF-8",
                          "save the file as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(path, f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}; "
                          "GBK/GB18030 or another local encoding?)",
                          "save the file as UTF-8 (e.g. Notepad: Save As, Encoding: UTF-8)"
                          ) from exc


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Load and validate a TOML config.

    Parameters
    ----------
    path
        The TOML file; ``None`` loads the shipped demo, ``configs/lujiazui.toml``.
    **overrides
        Top-level sections to replace after loading, e.g. ``output=Output(dir=tmp)``.

    Returns
    -------
    Config
        The validated configuration.
    """
    p = Path(path) if path is not None else default_config_path()
    if not p.is_file():
        raise InputFileError(p, "config file not found",
                             "pass --config configs/<name>.toml (see configs/README.md)")
    try:
        raw = tomllib.loads(_read_utf8(p))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(p, f"not valid TOML ({exc})", "fix the syntax at that line") from exc
    root = _root_for(p)
    cfg = _absolutize(_build(Config, raw, "", str(p), root), root)
    cfg = dataclasses.replace(cfg, source=p.resolve(), **overrides)
    _check(cfg, str(p))
    return typing.cast(Config, cfg)

