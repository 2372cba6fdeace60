"""``optimize``: try compression recipes, measure each on this machine, keep the Pareto front, pick one.

Every candidate is an artifact made by the registered methods (``fuse``, ``prune``,
``quantize``, ``distill``, and chains of them) and measured with :mod:`torchship.bench` at
the asked batch size on the validation split. Speed-ups are honest: the baseline is the
parent's **fastest fp32 runtime** measured in the same run (eager, ONNX Runtime,
TorchScript, ... whichever wins), and each candidate runs in its own fastest runtime (an
int8 graph only in ONNX Runtime). A candidate whose throughput is not at least
``min_speedup`` (1.05) times that baseline's is marked ``faster: false`` and never picked;
one that loses more accuracy than the budget is marked ``within_budget: false``.

A model without a labelled dataset (imported, ONNX-only, regression, embedding: what
``quantize`` judges by agreement, see :func:`~torchship.export.signed.uses_signature`) is
judged the same way here: every candidate against the fp32 baseline's outputs on inputs
generated from the signature (``judged_by: "agreement"``). A classifier's budget is
``max_accuracy_drop`` of top-1 disagreement; any other task's is ``max_relative_diff``, the
largest max |Δ| over the output's largest value, of any output. Recipes that need labelled
data (static int8 calibration, fine-tuning after pruning, distillation) are skipped, saying so. After the
candidates are made, the baseline and every candidate are timed again in interleaved
rounds and the verdicts use those medians, so load drifting on a shared machine during a
long run cannot favour whichever was timed in a quiet moment.

Results go to ``OUTDIR``: ``optimize.json`` (schema in docs/compress.md), ``optimize.md``
(the same table for people), ``baseline/``, ``candidates/<name>/{artifact,result.json}`` and
the picked candidate's artifact in ``artifact/``, the place every command's ``-o`` puts it.
A candidate whose ``result.json`` exists is read back, never recomputed, so an interrupted
run continues where it stopped.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from torchship.artifact import RUN_ARTIFACT, Artifact
from torchship.compress.base import CompressError, Strict, check_out, run
from torchship.compress.verdict import (
    SCHEMA,
    document,
    mark_pareto_,
    quality,
    quality_cells,
    to_markdown,
)
from torchship.errors import TorchshipError
from torchship.output import make_dirs, write_atomic

__all__ = [
    "SCHEMA",
    "OptimizeConfig",
    "OptimizeResult",
    "Recipe",
    "mark_pareto_",
    "optimize",
    "quality",
    "quality_cells",
    "recipes_for",
    "to_markdown",
]

RESULT = "result.json"


class Timing(Strict):
    """How long each (candidate, runtime) is timed; see :class:`torchship.bench.TimingConfig`."""

    warmup: NonNegativeInt = 5
    min_iterations: PositiveInt = 50
    min_time_s: float = Field(default=0.5, ge=0.0)
    max_time_s: PositiveFloat = 3.0
    rounds: PositiveInt = Field(default=3, description="interleaved rounds of the final timing pass")


class OptimizeConfig(Strict):
    """The accuracy budget, what to optimize for, and which recipes to try."""

    max_accuracy_drop: float = Field(default=0.01, ge=0.0, le=1.0, description="0.01 = one accuracy point")
    max_relative_diff: float = Field(
        default=0.05,
        ge=0.0,
        description="judged by agreement, not a classifier: largest max |Δ| / max |fp32 output|",
    )
    objective: Literal["latency", "size", "throughput"] = "latency"
    batch_size: PositiveInt = 1
    min_speedup: float = Field(
        default=1.05, ge=1.0, description="faster means at least this throughput ratio; less is noise"
    )
    time_budget_min: PositiveFloat | None = Field(default=None, description="start no candidate after this")
    recipes: list[str] | None = Field(default=None, description="recipes to try; default: all that apply")
    prune_ratios: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(default_factory=lambda: [0.25, 0.5])
    finetune_epochs: NonNegativeInt = 2
    student: str | None = Field(default=None, description="zoo model to distill into")
    student_kwargs: dict[str, Any] = Field(default_factory=dict)
    runtimes: list[str] = Field(
        default_factory=lambda: ["eager", "onnxruntime", "torchscript"],
        description="fp32 runtimes the baseline and float candidates are measured in",
    )
    threads: PositiveInt | None = None
    data: str | dict[str, Any] | None = None
    timing: Timing = Field(default_factory=Timing)


@dataclass(frozen=True)
class Recipe:
    """Compression steps ``(method, config)`` applied in order, to the parent or to ``base``'s artifact."""

    name: str
    steps: tuple[tuple[str, dict[str, Any]], ...]
    base: str | None = None


def recipes_for(cfg: OptimizeConfig) -> list[Recipe]:
    """Every recipe these settings describe, cheapest first; combinations come after their base."""
    tune = {"epochs": cfg.finetune_epochs}
    static = [("quantize", {"mode": "static", "calibration": c}) for c in ("minmax", "entropy", "percentile")]
    found = [Recipe("fuse", (("fuse", {}),)), Recipe("int8-dynamic", (("quantize", {"mode": "dynamic"}),))]
    found += [Recipe(f"int8-static-{step[1]['calibration']}", (step,)) for step in static]
    for ratio in cfg.prune_ratios:
        found.append(Recipe(f"prune-{round(ratio * 100)}", (("prune", {"ratio": ratio, "finetune": tune}),)))
    found.append(Recipe("fuse+int8-static", (static[0],), base="fuse"))
    if cfg.prune_ratios:
        largest = f"prune-{round(max(cfg.prune_ratios) * 100)}"
        found.append(Recipe(f"{largest}+int8-static", (static[0],), base=largest))
    if cfg.student:
        train = {"epochs": max(cfg.finetune_epochs, 1) * 5}
        student = {"student": cfg.student, "student_kwargs": cfg.student_kwargs, "train": train}
        found.append(Recipe("distill", (("distill", student),)))
        found.append(Recipe("distill+int8-static", (static[0],), base="distill"))
    if cfg.recipes is None:
        return found
    known = {r.name: r for r in found}
    unknown = [n for n in cfg.recipes if n not in known]
    if unknown:
        raise CompressError(f"unknown optimize recipe {unknown[0]!r}", fix=f"choose from: {', '.join(known)}")
    wanted = set(cfg.recipes)
    # a combination needs its base: run it too (it is a candidate in its own right)
    for name in cfg.recipes:
        if known[name].base:
            wanted.add(known[name].base)
    return [r for r in found if r.name in wanted]


@dataclass
class OptimizeResult:
    """What ``optimize`` found: the whole document written to ``optimize.json``, and the picked artifact."""

    document: dict[str, Any]
    picked: Artifact | None
    out: Path
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)


def optimize(
    artifact: Artifact,
    cfg: OptimizeConfig | None = None,
    *,
    out: str | Path,
    allow_import: Iterable[str] = (),
    console: Any = None,
    progress: Callable[[str], None] | None = None,
) -> OptimizeResult:
    """Make and measure every candidate, then pick the best one inside the accuracy budget.

    Args:
        progress: Called with ``"start NAME"`` before a candidate is made and ``"done NAME"`` after.

    Raises:
        CompressError: An unknown recipe name, or ``out`` inside the parent artifact.
    """
    cfg = cfg or OptimizeConfig()
    root = check_out(out, artifact).parent  # the run directory
    (root / "candidates").mkdir(parents=True, exist_ok=True)
    allowed = tuple(allow_import)
    say = progress or (lambda message: None)
    recipes = recipes_for(cfg)
    started = time.monotonic()
    measure = _Measurer(cfg, artifact, allowed)
    baseline = _baseline(artifact, cfg, root, measure)
    results: dict[str, dict[str, Any]] = {}
    computed, reused = [], []
    for recipe in recipes:
        home = root / "candidates" / recipe.name
        done = home / RESULT
        key = _key(cfg, artifact, recipe)
        finished = json.loads(done.read_text()) if done.is_file() else None
        if finished is not None and finished.get("key") == key:
            results[recipe.name] = finished
            reused.append(recipe.name)
            continue
        if cfg.time_budget_min is not None and time.monotonic() - started > cfg.time_budget_min * 60:
            reason = f"time budget of {cfg.time_budget_min:g} min spent"
            results[recipe.name] = _entry(recipe, "skipped", reason)
            continue
        lacking = needs_labels(recipe, cfg.finetune_epochs) if measure.judged_by == "agreement" else None
        if lacking is not None:
            reason = f"{lacking}, and {artifact.manifest.name} has none (pass --data to judge by accuracy)"
            results[recipe.name] = _entry(recipe, "skipped", reason)
            continue
        say(f"start {recipe.name}")
        results[recipe.name] = _candidate(
            recipe, artifact, cfg, home, results, baseline, measure, console, allowed
        )
        results[recipe.name]["key"] = key
        _write_json(done, results[recipe.name])  # the done marker: never recomputed after this
        computed.append(recipe.name)
        say(f"done {recipe.name}")
    _time_together([baseline, *(r for r in results.values() if r["status"] == "ok")], cfg, allowed)
    doc = document(artifact, cfg, baseline, [results[r.name] for r in recipes], measure.judged_by)
    _write_json(root / "optimize.json", doc)
    (root / "optimize.md").write_text(to_markdown(doc))
    shutil.rmtree(root / RUN_ARTIFACT, ignore_errors=True)  # an earlier run's pick
    picked = None
    if doc["picked_artifact"]:
        picked = Artifact.load(doc["picked_artifact"]).save(root / RUN_ARTIFACT)
    return OptimizeResult(doc, picked, root, computed, reused)


def judged_by(artifact: Artifact, cfg: OptimizeConfig) -> str:
    """``accuracy`` on the validation split, or ``agreement`` with fp32 for a model without labelled data."""
    from torchship.export.signed import uses_signature

    return "agreement" if uses_signature(artifact) and cfg.data is None else "accuracy"


class _Measurer:
    """Times an artifact in each runtime at one batch size, with accuracy on the validation split
    (or, judged by agreement, its outputs on generated inputs against the baseline's)."""

    def __init__(self, cfg: OptimizeConfig, parent: Artifact, allowed: tuple[str, ...]):
        from torchship.bench import BenchData, TimingConfig
        from torchship.compress.measure import judge_feeds, load_val

        self.cfg, self.allowed = cfg, allowed
        self.timing = TimingConfig(**cfg.timing.model_dump(exclude={"rounds"}))
        self.judged_by = judged_by(parent, cfg)
        self.data: BenchData | None = None
        self.feeds: list[dict[str, Any]] = []
        self.reference: list[dict[str, Any]] | None = None  # the baseline's outputs on self.feeds
        if self.judged_by == "agreement":
            self.signature, self.task = parent.manifest.signature, parent.manifest.task
            self.feeds = judge_feeds(self.signature)
        else:
            val = load_val(parent, cfg.data)  # one validation set for every candidate: same samples, labels
            self.data = BenchData(val.x.numpy(), val.y.numpy())

    def best(self, artifact: Artifact, runtimes: list[str]) -> dict[str, Any]:
        """The fastest runtime's row (by p50 latency at the batch size), and every runtime's figures."""
        from torchship.bench import measure_runtime

        data = self.data
        rows = {}
        for name in runtimes:
            row = measure_runtime(
                artifact,
                name,
                [self.cfg.batch_size],
                threads=self.cfg.threads,
                timing=self.timing,
                data=data,
                allow_import=self.allowed,
            )[0]
            rows[name] = row
        ok = {n: r for n, r in rows.items() if r.ok}
        if not ok:
            reasons = "; ".join(f"{n}: {r.reason}" for n, r in rows.items())
            raise CompressError(f"no runtime could run {artifact.manifest.name} ({reasons})")
        name, row = min(ok.items(), key=lambda item: item[1].latency_p50_ms)
        agreement = self.agreement(artifact, name) if self.judged_by == "agreement" else None
        if row.accuracy is None and agreement is None:
            raise CompressError(
                f"accuracy of {artifact.manifest.name} in {name} was not measured ({row.reason})"
            )
        return {
            "runtime": name,
            "accuracy": row.accuracy,
            **({"agreement": agreement} if agreement is not None else {}),
            "latency_p50_ms": row.latency_p50_ms,
            "latency_p90_ms": row.latency_p90_ms,
            "throughput_sps": row.throughput_sps,
            "size_bytes": row.file_size_bytes,
            "file": row.file,
            "runtimes": {
                n: (
                    {
                        "latency_p50_ms": r.latency_p50_ms,
                        "throughput_sps": r.throughput_sps,
                        "accuracy": r.accuracy,
                    }
                    if r.ok
                    else {"skipped": r.reason}
                )
                for n, r in rows.items()
            },
        }

    def agreement(self, artifact: Artifact, runtime: str) -> dict[str, Any]:
        """Outputs of ``artifact`` in ``runtime`` on the generated inputs against the baseline's.

        The first artifact asked (the baseline) sets the reference, so it agrees with itself.
        """
        from torchship.compress.measure import output_agreement
        from torchship.runtime import load_predictor

        try:
            predictor = load_predictor(
                artifact, runtime, threads=self.cfg.threads, warmup=0, allow_import=self.allowed
            )
            try:
                outputs = [predictor.run(dict(f)) for f in self.feeds]
            finally:
                predictor.close()
        except TorchshipError:
            raise
        except Exception as exc:  # noqa: BLE001 - one candidate's runtime failing is its failure, not the run's
            first = (str(exc).strip().splitlines() or [""])[0]
            raise CompressError(
                f"{artifact.manifest.name} failed on generated inputs in {runtime}: {first}"
            ) from None
        if self.reference is None:
            self.reference = outputs
        return output_agreement(self.signature, self.task, self.reference, outputs)


def _exported_for(artifact: Artifact, runtimes: list[str], allowed: tuple[str, ...]) -> Artifact:
    """The artifact with the exports its fp32 runtimes need (written into its own directory)."""
    from torchship.export import export
    from torchship.export.base import format_runtimes

    formats = [
        fmt
        for fmt, runs in format_runtimes().items()
        if runs.runtime in runtimes and fmt not in artifact.manifest.exports
    ]
    for fmt in formats:  # one format failing (say, TorchScript) must not cost the others
        try:
            artifact = export(artifact, [fmt], allow_import=allowed)
        except TorchshipError:
            continue
    return artifact


def _key(cfg: OptimizeConfig, parent: Artifact, recipe: Recipe | None = None) -> str:
    """What a finished result depends on; a result made under another key is made again.

    The parent, the measuring settings, and for a recipe its steps, its base, and (when it
    quantizes, whose fallback spends it) the accuracy budget.
    """
    import hashlib

    parts: dict[str, Any] = {
        "parent": parent.digest,
        **cfg.model_dump(mode="json", include={"batch_size", "threads", "runtimes", "data", "timing"}),
    }
    if recipe is not None:
        parts.update(steps=[[m, c] for m, c in recipe.steps], base=recipe.base)
        if any(m == "quantize" for m, _ in recipe.steps):
            parts["max_accuracy_drop"] = cfg.max_accuracy_drop
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _baseline(artifact: Artifact, cfg: OptimizeConfig, root: Path, measure: _Measurer) -> dict[str, Any]:
    done = root / "baseline" / RESULT
    key = _key(cfg, artifact)
    if done.is_file() and json.loads(done.read_text()).get("key") == key:
        result = json.loads(done.read_text())
        if measure.judged_by == "agreement":  # the reference outputs every candidate is compared with
            measure.agreement(Artifact.load(result["artifact"]), result["runtime"])
        return result
    home = root / "baseline"
    shutil.rmtree(home, ignore_errors=True)
    copy = _baseline_copy(artifact, home / "artifact", measure.judged_by)
    copy = _exported_for(copy, cfg.runtimes, measure.allowed)
    result = {
        "name": "fp32",
        "baseline": True,
        "status": "ok",
        "recipe": [],
        "artifact": str(copy.path),
        **measure.best(copy, cfg.runtimes),
        "key": key,
    }
    _write_json(done, result)
    return result


def _baseline_copy(artifact: Artifact, target: Path, judged_by: str) -> Artifact:
    """The parent as the baseline; judged by agreement it keeps its exports (its stored program,
    or its ONNX graph, may be all there is to run it from)."""
    if judged_by == "accuracy":
        return artifact.derive(op="optimize.baseline").save(target)
    exports = {
        fmt: info
        for fmt, info in artifact.manifest.exports.items()
        if info.get("file") in artifact.manifest.files  # a file, not a folder such as triton/
    }
    files = {info["file"]: artifact.file(info["file"]) for info in exports.values()}
    return artifact.derive(op="optimize.baseline", exports=exports).save(target, extra_files=files)


def _time_together(rows: list[dict[str, Any]], cfg: OptimizeConfig, allowed: tuple[str, ...]) -> None:
    """Time every measured row again, interleaved over ``timing.rounds`` rounds; keep the medians.

    Candidates are made (and first timed) minutes apart, and a shared machine's load drifts
    meanwhile. The figures the verdicts use come from this pass, where each round times the
    baseline and every candidate back to back, so drift hits them all alike. The first
    pass's p50 stays in ``first_pass_p50_ms``.
    """
    from torchship.bench import example_batch, measure_latency
    from torchship.runtime import load_predictor

    loaded = []
    try:
        for row in rows:
            art = Artifact.load(row["artifact"])
            predictor = load_predictor(
                art, row["runtime"], threads=cfg.threads, warmup=0, allow_import=allowed
            )
            batch = example_batch(art, cfg.batch_size)
            call = predictor.run if isinstance(batch, dict) else predictor.predict
            loaded.append((row, call, batch, predictor))
        timing = cfg.timing.model_dump(exclude={"rounds"})
        p50s: dict[int, list[float]] = {id(row): [] for row in rows}
        p90s: dict[int, list[float]] = {id(row): [] for row in rows}
        for _ in range(cfg.timing.rounds):
            for row, call, batch, _ in loaded:
                stats = measure_latency(call, batch, **timing)
                p50s[id(row)].append(stats.p50_ms)
                p90s[id(row)].append(stats.p90_ms)
    finally:
        for *_, predictor in loaded:
            predictor.close()
    for row in rows:
        row.setdefault("first_pass_p50_ms", row["latency_p50_ms"])
        row["latency_p50_ms"] = statistics.median(p50s[id(row)])
        row["latency_p90_ms"] = statistics.median(p90s[id(row)])
        row["throughput_sps"] = cfg.batch_size * 1e3 / row["latency_p50_ms"]
        row["timing_rounds"] = cfg.timing.rounds


def _candidate(
    recipe: Recipe,
    parent: Artifact,
    cfg: OptimizeConfig,
    home: Path,
    results: dict[str, dict[str, Any]],
    baseline: dict[str, Any],
    measure: _Measurer,
    console: Any,
    allowed: tuple[str, ...],
) -> dict[str, Any]:
    shutil.rmtree(home, ignore_errors=True)  # a half-made candidate from an interrupted run starts over
    home.mkdir(parents=True)
    start = time.monotonic()
    source, used = parent, 0.0
    if recipe.base is not None:
        base = results.get(recipe.base, {})
        if base.get("status") != "ok":
            why = base.get("reason", "not run")
            return _entry(recipe, "skipped", f"its base {recipe.base} has no artifact ({why})")
        source, used = Artifact.load(base["artifact"]), _used(baseline, base)
    try:
        for i, (method, step) in enumerate(recipe.steps):
            step = {**step, "data": cfg.data} if cfg.data is not None else dict(step)
            if method == "quantize" and step.get("mode") != "pt2e" and used < cfg.max_accuracy_drop:
                # the budget left after the base's own loss; quantize keeps sensitive layers float to fit it
                # (a base already over budget gets plain int8: no float layer could bring it back)
                step["max_accuracy_drop"] = cfg.max_accuracy_drop - used
            target = home if i == len(recipe.steps) - 1 else home / f"step-{i}"  # writes TARGET/artifact
            source = run(source, method, step, out=target, allow_import=allowed, console=console)
        int8 = "onnx-int8" in source.manifest.exports
        runtimes = ["onnxruntime"] if int8 else cfg.runtimes
        source = source if int8 else _exported_for(source, runtimes, allowed)
        figures = measure.best(source, runtimes)
    except TorchshipError as exc:
        return _entry(recipe, "failed", str(exc), time_s=time.monotonic() - start)
    entry = _entry(recipe, "ok", None, time_s=time.monotonic() - start)
    entry.update(figures, artifact=str(source.path))
    if recipe.steps and recipe.steps[-1][0] == "quantize":
        params = source.manifest.lineage.params
        entry["float_nodes"] = sorted(params.get("float_nodes", {}))
    return entry


def _used(baseline: dict[str, Any], base: dict[str, Any]) -> float:
    """The accuracy budget a combination's base already spent (none when judged by agreement)."""
    if base.get("accuracy") is None or baseline.get("accuracy") is None:
        return 0.0
    return max(0.0, baseline["accuracy"] - base["accuracy"])


def needs_labels(recipe: Recipe, finetune_epochs: int) -> str | None:
    """Why ``recipe`` cannot run on a model without labelled data, or None when it can."""
    for method, step in recipe.steps:
        if method == "quantize" and step.get("mode") == "static":
            return "static int8 calibrates on labelled data"
        if method == "prune" and finetune_epochs > 0:
            return "pruning fine-tunes on labelled data (set finetune_epochs: 0 to prune without it)"
        if method == "distill":
            return "distillation trains on labelled data"
    return None


def _entry(recipe: Recipe, status: str, reason: str | None, time_s: float | None = None) -> dict[str, Any]:
    steps = [{"method": m, **c} for m, c in recipe.steps]
    return {
        "name": recipe.name,
        "status": status,
        "reason": reason,
        "base": recipe.base,
        "recipe": steps,
        "time_s": time_s,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    make_dirs(path.parent)
    write_atomic(path, json.dumps(data, indent=2) + "\n")
