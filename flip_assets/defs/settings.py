"""How resources take their settings from environment variables: one rule, one validation helper.

Each resource lists its variables in ENV, {field: variable}, and `from_env` builds it:
- a variable that is set becomes an EnvVar (the UI shows where the value came from, and a secret
  travels only so, never as its value); a float one is read at once, as EnvVar carries only
  strings and integers;
- an unset one leaves the field's default, most of them taken from the core settings dataclasses
  (an override that may be absent is Optional[...] = None, never a number meaning "none");
- a required field takes the default given to `from_env` (a path of this checkout), else stays an
  EnvVar: the run then fails naming the variable, and reads it only when it starts (the pipeline
  sets OPENAI_BASE_URL after importing the definitions).
Validation goes through `require`, whose error names the variable a user would change.
"""

from __future__ import annotations

import os
import types
import typing
from typing import ClassVar

from dagster import ConfigurableResource, EnvVar


class EnvSettings(ConfigurableResource):
    ENV: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_env(cls, **defaults):
        if unknown := defaults.keys() - cls.ENV.keys():
            raise TypeError(f"{cls.__name__}.from_env: {sorted(unknown)} have no environment variable")
        values = {}
        for field, name in cls.ENV.items():
            if os.environ.get(name):
                values[field] = _variable(name, cls.field_type(field))
            elif field in defaults:
                values[field] = defaults[field]
            elif cls.model_fields[field].is_required():
                values[field] = EnvVar(name)
        return cls(**values)

    @classmethod
    def field_type(cls, field: str) -> type:
        """The field's type; Optional[X] is X (None: the variable is unset)."""
        kind = cls.model_fields[field].annotation
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            kinds = [k for k in typing.get_args(kind) if k is not type(None)]
            if len(kinds) == 1:
                return kinds[0]
        return kind

    @classmethod
    def setting(cls, field: str) -> str:
        """What a user sets to change the field: its variable, else the field in the resource config."""
        return cls.ENV.get(field) or f"{cls.__name__}.{field}"

    def require(self, field: str, valid: bool, rule: str) -> None:
        """Fail fast naming the setting and its value (so never for a secret)."""
        if not valid:
            raise ValueError(f"{self.setting(field)}={getattr(self, field)!r} {rule}")


def prefixed(prefix: str, *fields: str) -> dict[str, str]:
    """{field: PREFIX_FIELD}: the variables of a resource whose names follow its fields."""
    return {field: f"{prefix}_{field.upper()}" for field in fields}


def _variable(name: str, kind: type):
    if kind is int:
        return EnvVar.int(name)
    if kind is float:
        value = os.environ[name]
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} is not a number") from None
    return EnvVar(name)
