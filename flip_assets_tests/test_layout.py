"""The layout a newcomer can rely on, read from the source (AST, no run): imports run one way
between the folders, every asset key is written once, and a UI group is a domain folder.

flip_assets/defs/<domain>/   imports its own domain, the shared defs modules and core/
flip_assets/defs/*.py        shared modules: import each other and core/, never a domain or the
                             aggregator (defs/resources.py, defs/__init__.py, definitions.py)
flip_assets/core/io/         imports only core/io
flip_assets/core/<domain>/   imports core/io, its own domain and the domains before it in the
                             pipeline's order (DOMAIN_ORDER): a later stage may use an earlier
                             stage's logic (the release matches keywords, evaluation detects faces),
                             never the other way round
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "flip_assets"
DEFS = PACKAGE / "defs"
CORE = PACKAGE / "core"
DOMAIN_ORDER = ("curation", "release", "analytics", "training", "evaluation")
AGGREGATOR = {"flip_assets.defs.resources", "flip_assets.defs", "flip_assets.definitions"}
ASSET_KEYS_MODULE = DEFS / "asset_keys.py"
# String literals in defs/ that equal an asset key but name something else.
NOT_ASSET_KEYS = {("resources.py", "raw_shards"): "the shared sample data's folder, ../shared/data/raw_shards"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = REPO_ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every flip_assets module the source imports, at the top or inside a function; `from a
    import b` counts as a.b where b is a module."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
    return {name for name in found if name.split(".")[0] == "flip_assets"}


def defs_domain(module: str) -> str | None:
    """The domain folder of a flip_assets.defs module, None for a shared one."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[:2] == ["flip_assets", "defs"] else None


def is_shared_defs(module: str) -> bool:
    parts = module.split(".")
    return len(parts) == 3 and parts[:2] == ["flip_assets", "defs"] and module not in AGGREGATOR


def import_faults(module: str, imported: set[str]) -> list[str]:
    """The imports of one module that break the rule of its folder (the module docstring)."""
    parts = module.split(".")
    if parts[:2] == ["flip_assets", "defs"]:
        if module in AGGREGATOR:
            return []
        own = defs_domain(module)

        def allowed(target: str) -> bool:
            if target.startswith("flip_assets.core") or is_shared_defs(target):
                return True
            return own is not None and (defs_domain(target) == own or target == f"flip_assets.defs.{own}")
    else:
        own = parts[2] if len(parts) > 2 else None
        domains = {"io"} | ({own, *DOMAIN_ORDER[: DOMAIN_ORDER.index(own)]} if own in DOMAIN_ORDER else set())

        def allowed(target: str) -> bool:
            target_parts = target.split(".")
            return target_parts[:2] == ["flip_assets", "core"] and (len(target_parts) == 2 or target_parts[2] in domains)
    return [f"{module} imports {target}" for target in sorted(imported) if not allowed(target)]


def layering_faults() -> list[str]:
    faults = []
    for path in sorted([*DEFS.rglob("*.py"), *CORE.rglob("*.py")]):
        module = module_name(path)
        faults += import_faults(module, imported_modules(path.read_text(), module, path.name == "__init__.py"))
    return faults


def test_imports_run_one_way_between_the_folders():
    assert layering_faults() == []


def test_the_layering_rule_sees_the_imports_it_forbids():
    """Relative and function-level imports count too, so a sideways import cannot hide."""
    source = "from ..training import checkpoint\n\ndef f():\n    from flip_assets.defs.curation.resources import LLMResource\n"
    module = "flip_assets.defs.evaluation.probe"
    assert import_faults(module, imported_modules(source, module)) == [
        f"{module} imports flip_assets.defs.curation.resources", f"{module} imports flip_assets.defs.training.checkpoint",
    ]
    shared = "flip_assets.defs.probe"
    assert import_faults(shared, imported_modules("from flip_assets.defs.resources import build_resources", shared)) == [
        f"{shared} imports flip_assets.defs.resources"
    ]
    core = "flip_assets.core.curation.probe"
    assert import_faults(core, imported_modules("from flip_assets.core.training import dual_encoder", core)) == [
        f"{core} imports flip_assets.core.training.dual_encoder"
    ]
    assert import_faults("flip_assets.core.evaluation.probe", {"flip_assets.core.curation.detectors"}) == []


def asset_keys() -> set[str]:
    from flip_assets.definitions import defs

    return {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}


def test_every_asset_key_is_written_once_in_asset_keys():
    """The wiring names other assets by the constants of defs/asset_keys.py: a key literal
    anywhere else in defs/ (deps, reads, checks, step keys; also "key/sub" paths) is a second
    home for the name. Docstrings and f-string text are prose, not names."""
    from flip_assets.defs import asset_keys as constants

    keys = asset_keys()
    defined = [v for name, v in vars(constants).items() if name.isupper() and isinstance(v, str)]
    assert sorted(defined) == sorted(keys), "defs/asset_keys.py holds one constant per asset key"
    assert sorted(constants.PAIR_ASSETS) == ["celeba_caption_pairs", "raw_shard_pairs", "released_pairs"]
    elsewhere = []
    for path in sorted(DEFS.rglob("*.py")):
        if path == ASSET_KEYS_MODULE:
            continue
        tree = ast.parse(path.read_text())
        in_fstrings = {id(c) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for c in ast.walk(n)}
        docstrings = {
            id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and ast.get_docstring(n) is not None
        }  # fmt: skip
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in in_fstrings | docstrings:
                continue
            key = node.value.split("/")[0]
            if key in keys and (path.relative_to(DEFS).as_posix(), key) not in NOT_ASSET_KEYS:
                elsewhere.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: {node.value!r}")
    assert elsewhere == []


def test_every_asset_function_is_named_as_its_key():
    """An @asset's key is its function's name; a multi_asset's keys are its outs (constants)."""
    from flip_assets.definitions import defs

    single = [a for a in defs.resolve_asset_graph().assets_defs if a.is_executable and len(a.keys) == 1]
    assert len(single) >= 20
    assert [(a.key.to_user_string(), a.op.name) for a in single if a.key.to_user_string() != a.op.name] == []


def test_an_assets_ui_group_is_its_domain_folder():
    """The UI's groups are the folders of defs/ (curation, release, analytics, training,
    evaluation), so a newcomer finds an asset's code from its group."""
    import inspect

    from flip_assets.definitions import defs

    groups = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if not assets_def.is_executable:
            continue
        module = inspect.getmodule(assets_def.op.compute_fn.decorated_fn).__name__
        for key in assets_def.keys:
            groups[key.to_user_string()] = (assets_def.group_names_by_key[key], defs_domain(module))
    assert len(groups) == len(asset_keys())
    assert {key: pair for key, pair in groups.items() if pair[0] != pair[1]} == {}
    assert {group for group, _ in groups.values()} == set(DOMAIN_ORDER)


def test_the_curation_group_takes_a_shard_range_in_one_run():
    """The README's `dagster asset materialize --select 'group:curation' --partition-range A...B`:
    the CLI takes a range only for a selection that fits one job and whose every asset has
    BackfillPolicy.single_run() (`not group:release` failed so: analytics, training and
    evaluation assets have none)."""
    from dagster import AssetSelection, BackfillPolicy

    from flip_assets.definitions import defs

    repo = defs.get_repository_def()
    keys = AssetSelection.from_coercible(["group:curation"]).resolve(repo.asset_graph)
    assert len(keys) == 11
    job = repo.get_implicit_job_def_for_assets(keys)
    assert job is not None
    policies = {key.to_user_string(): job.asset_layer.get(key).backfill_policy for key in keys}
    assert {k: p for k, p in policies.items() if p != BackfillPolicy.single_run()} == {}
