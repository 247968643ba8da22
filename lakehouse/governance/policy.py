"""The governance policy: roles, masking strategies and erasure subjects, from one YAML file.

The default file is ``assets/governance/policy.yaml`` (next to the governance assets); a bad
file stops with a :class:`PolicyError` naming the file and the field.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from lakehouse.exceptions import LakehouseError
from lakehouse.governance.classifier import PII_CLASSES, PiiClass
from lakehouse.naming import TableRef
from lakehouse.settings import project_root

__all__ = [
    "STRATEGIES",
    "ErasureSubject",
    "Follow",
    "Policy",
    "PolicyError",
    "Role",
    "Strategy",
    "default_policy_path",
    "load_policy",
]

Strategy = Literal["hash", "partial", "generalise", "null", "clear"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


class PolicyError(LakehouseError, ValueError):
    """The governance policy YAML is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    clear: bool


@dataclass(frozen=True)
class Follow:
    """Keys of a subject's rows in ``sources`` that identify dependent rows elsewhere."""

    column: str
    sources: tuple[str, ...]  # table patterns (layer.domain.table, * wildcards)

    def applies_to(self, ref: TableRef) -> bool:
        return any(fnmatch.fnmatchcase(str(ref), p) for p in self.sources)


@dataclass(frozen=True)
class ErasureSubject:
    name: str
    key: str
    identifiers: tuple[str, ...]
    follow: tuple[Follow, ...] = ()


@dataclass(frozen=True)
class Policy:
    path: str
    roles: Mapping[str, Role]
    masking: Mapping[PiiClass, Strategy]
    columns: Mapping[str, Strategy] = field(default_factory=dict)
    subjects: Mapping[str, ErasureSubject] = field(default_factory=dict)
    digest: str = ""

    def role(self, name: str) -> Role:
        if name not in self.roles:
            raise PolicyError(f"{self.path}: role {name!r} is not defined; roles: {', '.join(sorted(self.roles))}")
        return self.roles[name]

    def strategy_for(self, ref: TableRef, column: str, pii_class: PiiClass | None) -> Strategy:
        """How ``column`` of ``ref`` is shown to a role without clear access."""
        name = f"{ref}.{column}"
        for pattern, strategy in self.columns.items():
            if fnmatch.fnmatchcase(name, pattern):
                return strategy
        if pii_class is None:
            return "clear"
        return self.masking.get(pii_class, "null")

    def subject_for(self, column: str) -> ErasureSubject:
        """The erasure subject identified by ``column`` (a subject of its own when none declares it)."""
        for subject in self.subjects.values():
            if column == subject.key or column in subject.identifiers:
                return subject
        return ErasureSubject(name=column, key=column, identifiers=(column,))


def default_policy_path() -> Path:
    return project_root() / "assets" / "governance" / "policy.yaml"


def _fail(path: str, where: str, problem: str) -> PolicyError:
    return PolicyError(f"{path}: {where}: {problem}")


def _strategy(path: str, where: str, value: Any) -> Strategy:
    text = "null" if value is None else str(value)
    if text not in STRATEGIES:
        raise _fail(path, where, f"{value!r} is not a masking strategy; accepted values: {', '.join(STRATEGIES)}")
    return cast(Strategy, text)


def _strings(path: str, where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise _fail(path, where, "must be a list of strings")
    return tuple(value)


def load_policy(path: str | Path | None = None) -> Policy:
    """Parse and validate the policy file (default: :func:`default_policy_path`)."""
    file = Path(path) if path is not None else default_policy_path()
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{name}: cannot read the governance policy ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PolicyError(f"{name}: not valid YAML ({exc})") from None
    if not isinstance(doc, Mapping):
        raise _fail(name, "top level", "must be a mapping")
    roles_doc = doc.get("roles") or {}
    if not isinstance(roles_doc, Mapping) or not roles_doc:
        raise _fail(name, "roles", "must name at least one role")
    roles = {}
    for role_name, body in roles_doc.items():
        if not isinstance(body, Mapping):
            raise _fail(name, f"roles.{role_name}", "must be a mapping with description and clear")
        roles[str(role_name)] = Role(str(role_name), str(body.get("description", "")), bool(body.get("clear", False)))
    masking_doc = doc.get("masking") or {}
    if not isinstance(masking_doc, Mapping):
        raise _fail(name, "masking", "must map PII classes to strategies")
    masking: dict[PiiClass, Strategy] = {}
    for pii_class, strategy in masking_doc.items():
        if pii_class not in PII_CLASSES:
            raise _fail(name, f"masking.{pii_class}", f"unknown PII class; accepted: {', '.join(PII_CLASSES)}")
        masking[cast(PiiClass, pii_class)] = _strategy(name, f"masking.{pii_class}", strategy)
    missing = [c for c in PII_CLASSES if c not in masking]
    if missing:
        raise _fail(name, "masking", f"no strategy for {', '.join(missing)} (every PII class needs one)")
    columns_doc = doc.get("columns") or {}
    if not isinstance(columns_doc, Mapping):
        raise _fail(name, "columns", "must map layer.domain.table.column patterns to strategies")
    columns = {str(k): _strategy(name, f"columns.{k}", v) for k, v in columns_doc.items()}
    for pattern in columns:
        if pattern.count(".") != 3:
            raise _fail(name, f"columns.{pattern}", "must be layer.domain.table.column (use * for any part)")
    subjects: dict[str, ErasureSubject] = {}
    erasure = doc.get("erasure") or {}
    for subject_name, body in ((erasure.get("subjects") or {}) if isinstance(erasure, Mapping) else {}).items():
        where = f"erasure.subjects.{subject_name}"
        if not isinstance(body, Mapping) or not isinstance(body.get("key"), str):
            raise _fail(name, where, "needs a key column")
        key = str(body["key"])
        identifiers = _strings(name, f"{where}.identifiers", body.get("identifiers") or [key])
        follows = []
        for i, item in enumerate(body.get("follow") or []):
            if not isinstance(item, Mapping) or not isinstance(item.get("column"), str):
                raise _fail(name, f"{where}.follow[{i}]", "needs column and from")
            follows.append(Follow(str(item["column"]), _strings(name, f"{where}.follow[{i}].from", item.get("from"))))
        subjects[str(subject_name)] = ErasureSubject(
            str(subject_name), key, tuple(dict.fromkeys((key, *identifiers))), tuple(follows)
        )
    return Policy(
        path=name,
        roles=roles,
        masking=masking,
        columns=columns,
        subjects=subjects,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )
