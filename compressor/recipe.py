"""Run recipes: every option of `compress` as plain YAML data, onto the same frozen configs as the flags.

    # recipe.yaml
    targets: [onnx, tflite]
    quantize: int8              # or a mapping of StaticInt8's fields ({calib_method: entropy}; `mode: qat` ...)
    max_accuracy_drop: 0.5
    bench: [cpu]
    bench_bounds: quick
    student: auto               # distillation keys: flat, or under `distill:`
    epochs: 20

Keys are the long flags' names with underscores (`--bench-bounds` is `bench_bounds`, `--target` is
`targets`, `--calib` is `calib`); distillation keys are DistillConfig's fields. Flags typed on the command
line override the recipe (`merge`). The model and how to load it (--arch, --trust-model) and where to
write (--out, --overwrite) stay on the command line: a recipe is data that may come from elsewhere, so it
names no code to import and gives no consent to unpickling. Reading one never runs code
(compressor.distill.recipe.read: yaml.safe_load, no tags). `dump(cfg)` is the recipe of a RunConfig, with
every option: `build(parse(...))` of it gives the same config back.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from exporters.base import ExportOptions

from .config import RunConfig, convert, from_mapping
from .core.errors import CompressError
from .distill.config import DistillConfig
from .quantize.config import MODES, StaticInt8, from_name

# recipe key -> (config class, field): the options of the flags, each typed as the field it sets
KEYS: dict[str, tuple[type, str]] = {
    "targets": (RunConfig, "targets"), "data": (RunConfig, "data"), "input_shape": (RunConfig, "input_shape"),
    "seed": (RunConfig, "seed"), "parity_samples": (RunConfig, "parity_samples"),
    "calib": (ExportOptions, "calib_samples"), "layout": (ExportOptions, "layout"),
    "variants": (ExportOptions, "variants"), "tfjs_quant": (ExportOptions, "tfjs_quant"),
    "bundle": (ExportOptions, "bundle"), "max_accuracy_drop": (ExportOptions, "max_accuracy_drop"),
    "min_agreement": (ExportOptions, "min_agreement"),
    "calib_method": (StaticInt8, "calib_method"),
    "bench": (RunConfig, "bench"), "bench_bounds": (RunConfig, "bench_bounds"),
    "bench_device": (RunConfig, "bench_device"), "task": (RunConfig, "task"),
    "preprocess": (RunConfig, "preprocess"), "labels": (RunConfig, "labels"), "tokenizer": (RunConfig, "tokenizer"),
    "opset": (ExportOptions, "opset"), "dynamic": (ExportOptions, "dynamic"),
    "input_dtype": (RunConfig, "input_dtype"), "inputs": (RunConfig, "inputs"),
}
EXPORT_KEYS = {k: f for k, (cls, f) in KEYS.items() if cls is ExportOptions}
# flat keys that also set a field of the quantize config (as the flags do), by field name
QUANT_FIELDS = {"calib": "calib_samples", "calib_method": "calib_method", "max_accuracy_drop": "max_accuracy_drop"}
DISTILL_KEYS = tuple(f.name for f in dataclasses.fields(DistillConfig) if f.name != "seed")  # seed: the run's
COMMAND_LINE_ONLY = ("model", "out", "overwrite", "arch", "trust_model")
DEFAULTS = {"max_accuracy_drop": 1.0}  # the CLI's budget (ExportOptions' own default, None, is the API's)
HEADER = ("# compress recipe: every option of the run (docs/api.md#recipes). Repeat it with\n"
          "#   compress {model} --recipe recipe.yaml --out OTHER\n"
          "# (the model, --arch, --trust-model, --out and --overwrite are given on the command line).\n")


def option(key: str, value: Any, where: str) -> Any:
    """One option's value (a recipe's data, or a flag's text) as the type of the field it sets."""
    cls, name = KEYS[key]
    return convert(typing.get_type_hints(cls)[name], value, where)


def load(path: str | Path) -> dict[str, Any]:
    """A recipe file's options, checked (`parse`)."""
    from .distill.recipe import read_file

    return parse(read_file(path), str(path))


def parse(data: Any, where: str = "recipe") -> dict[str, Any]:
    """A recipe's plain data -> its options: values converted, each group checked on its config now, so
    that an error names the recipe; distillation keys gathered under "distill" (None: explicitly off)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CompressError(f"{where}: expected a mapping of options, got {type(data).__name__}; "
                            "see docs/api.md#recipes")
    known = (*KEYS, "quantize", "distill", *DISTILL_KEYS)
    typed_only = [k for k in COMMAND_LINE_ONLY if k in data]
    if typed_only:
        raise CompressError(f"{where}: {', '.join(typed_only)} cannot be in a recipe (the model, how to load it "
                            "and where to write are given on the command line); remove them")
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise CompressError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
    opts = {k: option(k, v, f"{where}.{k}") for k, v in data.items() if k in KEYS}
    flat = {k: data[k] for k in DISTILL_KEYS if k in data}
    if "distill" in data:
        if flat:
            raise CompressError(f"{where}: distillation keys both at the top ({', '.join(flat)}) and under "
                                "distill:; keep them in one place")
        if data["distill"] is not None and not isinstance(data["distill"], dict):
            raise CompressError(f"{where}.distill: expected a mapping of distillation options (or null), got "
                                f"{type(data['distill']).__name__}")
        opts["distill"] = data["distill"]
    elif flat:
        opts["distill"] = flat
    if "quantize" in data:
        opts["quantize"] = data["quantize"]
    try:  # each group checked now, on its own config: an error then names the recipe
        RunConfig(model="recipe", **_run_fields(opts))  # bench and bench_device are checked together
        export = _export(opts)
        if "quantize" in opts:  # calib_method alone may wait for a typed --quantize int8
            _quantize(opts, export, where)
        distill_config(opts, where)
    except CompressError as e:
        raise CompressError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
    return opts


def merge(recipe: dict[str, Any], typed: dict[str, Any]) -> dict[str, Any]:
    """The recipe's options with the typed flags' on top. A typed --calib, --calib-method or
    --max-accuracy-drop also beats the same field in a recipe's quantize mapping."""
    out = {**recipe, **typed}
    q = recipe.get("quantize")
    if isinstance(q, dict) and "quantize" not in typed:
        fields = {f.name for f in dataclasses.fields(_mode(q))}
        out["quantize"] = {**q, **{f: typed[k] for k, f in QUANT_FIELDS.items() if k in typed and f in fields}}
    return out


def distill_config(opts: dict[str, Any], where: str = "recipe") -> DistillConfig | None:
    """The recipe's distillation (None without distillation keys); its seed is the recipe's run seed unless
    it sets one (a typed --seed is applied after, by compressor.distill.cli_args.apply)."""
    section = opts.get("distill")
    if section is None:
        return None
    return from_mapping(DistillConfig, {"seed": opts.get("seed", 0), **section}, where)


def build(opts: dict[str, Any], *, model: str, distill: DistillConfig | None, out: str = "out",
          overwrite: bool = False, arch: str | None = None, trust_model: bool = False) -> RunConfig:
    """The RunConfig of merged options (`merge`); `distill` is `distill_config`'s, with typed flags applied."""
    export = _export(opts)
    return RunConfig(model=model, out=out, overwrite=overwrite, arch=arch, trust_model=trust_model,
                     export=export, quantize=_quantize(opts, export, "recipe"), distill=distill,
                     **_run_fields(opts))


def run_config(path: str | Path, *, model: str, **command_line: Any) -> RunConfig:
    """A recipe file as a RunConfig (`command_line`: out, overwrite, arch, trust_model), as `--recipe` alone."""
    opts = load(path)
    return build(opts, model=model, distill=distill_config(opts, str(path)), **command_line)


def to_data(cfg: RunConfig) -> dict[str, Any]:
    """The recipe of `cfg`: every option a recipe can hold, with its value (defaults included)."""
    data: dict[str, Any] = {}
    for key, (cls, name) in KEYS.items():  # in KEYS' order; the quantize config in calib_method's place
        if cls is StaticInt8:
            q = cfg.quantize
            data["quantize"] = None if q is None else {
                "mode": next(n for n in MODES.names() if MODES.get(n) is type(q)),
                **{f.name: _plain(getattr(q, f.name)) for f in dataclasses.fields(q)}}
        else:
            data[key] = _plain(getattr(cfg.export if cls is ExportOptions else cfg, name))
    if cfg.distill is not None:
        d = cfg.distill
        data["distill"] = {f.name: _plain(getattr(d, f.name)) for f in dataclasses.fields(d)
                           if f.name != "seed" or d.seed != cfg.seed}  # the run's seed unless it differs
    return data


def dump(cfg: RunConfig) -> str:
    import yaml

    return HEADER.format(model="demo" if cfg.model == "demo" else "MODEL") + yaml.safe_dump(to_data(cfg),
                                                                                            sort_keys=False)


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _run_fields(opts: dict[str, Any]) -> dict[str, Any]:
    return {k: opts[k] for k, (cls, _) in KEYS.items() if cls is RunConfig and k in opts}


def _export(opts: dict[str, Any]) -> ExportOptions:
    merged = {**DEFAULTS, **opts}
    return ExportOptions(**{f: merged[k] for k, f in EXPORT_KEYS.items() if k in merged})


def _mode(q: dict[str, Any]) -> type:
    mode = q.get("mode", "int8")
    if not isinstance(mode, str):
        raise CompressError(f"quantize.mode: expected a name ({', '.join(MODES.names())}), got {mode!r}")
    return MODES.get(mode)


def _quantize(opts: dict[str, Any], export: ExportOptions, where: str) -> Any:
    """`quantize:` a name (with the flat calib, calib_method, max_accuracy_drop, as the flags), or a mapping of
    a config's fields (`mode:` picks the config, int8 by default; the flat keys fill the fields it omits)."""
    q, method = opts.get("quantize"), opts.get("calib_method")
    if q is None:
        if method is not None:
            raise CompressError("--calib-method needs --quantize int8 (in a recipe: calib_method needs "
                                "quantize: int8)")
        return None
    agreement = {"min_agreement": export.min_agreement} if "min_agreement" in opts else {}  # else each mode's own
    if isinstance(q, str):
        return from_name(q, calib_method=method, calib_samples=export.calib_samples,
                         max_accuracy_drop=export.max_accuracy_drop, **agreement)
    if not isinstance(q, dict):
        raise CompressError(f"quantize: expected a name ({', '.join(MODES.names())}) or a mapping of "
                            f"StaticInt8's fields, got {type(q).__name__}")
    cls = _mode(q)
    fields = {f.name for f in dataclasses.fields(cls)}
    if method is not None and "calib_method" not in fields:
        raise CompressError(f"calib_method applies to quantize mode int8 only (got mode {q.get('mode')})")
    flat = {"calib_samples": export.calib_samples, "max_accuracy_drop": export.max_accuracy_drop, **agreement,
            **({"calib_method": method} if method is not None else {})}
    base = {f: v for f, v in flat.items() if f in fields}
    return from_mapping(cls, {**base, **{k: v for k, v in q.items() if k != "mode"}}, f"{where}.quantize")
