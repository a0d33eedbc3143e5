"""Property-style tests of the findings: on many seeded, randomly generated runs (chance-level models,
ties, a single model, negative changes, recipes that differ), every sentence must be true of its tables."""

from __future__ import annotations

import ast
import json
import math
import random
import re
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import pandas as pd
import pytest

import xaiquest
from xaiquest.layout import RELATIVE
from xaiquest.pipeline import STAGES
from xaiquest.report import RunTables, run_rules
from xaiquest.report.findings import (
    CHANCE_MARGIN,
    CONFIDENCE_TOLERANCE,
    Finding,
    chance_level_groups,
    group_of,
    robustness_families,
)
from xaiquest.report.reader import EXPECTED_TABLES, PER_RUN_FILES, STAGE_TABLES

SEEDS = range(30)
CLASSES = tuple(f"class{i}" for i in range(10))
CORRUPTIONS = {"noise": ("gaussian_noise", "shot_noise"), "blur": ("defocus_blur",), "weather": ("fog",),
               "digital": ("contrast", "pixelate")}


def _save(root: Path, rel: Path, content: pd.DataFrame | dict) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    else:
        path.write_text(json.dumps(content))


def _accuracy(rng: random.Random, pool: list[float]) -> float:
    """At chance, near chance, a tie with an earlier model, or anywhere up to 95 %."""
    choice = rng.random()
    value = (0.1 if choice < 0.2 else round(0.1 + rng.uniform(0, 0.06), 4) if choice < 0.35
             else rng.choice(pool) if choice < 0.5 and pool else round(rng.uniform(0.2, 0.95), 4))
    pool.append(value)
    return value


def random_run(root: Path, seed: int) -> Path:
    """A run directory whose tables vary in every way the rules must handle."""
    rng = random.Random(seed)
    single = seed % 10 == 3  # every tenth run: one model, one seed
    models = [f"m{i}" for i in range(1 if single else rng.randint(1, 4))]
    variants = ["baseline"] + (["label_smoothing"] if rng.random() < 0.6 and not single else [])
    groups = [(m, "baseline") for m in models] + [(models[0], v) for v in variants[1:]]
    seeds = 1 if single else rng.choice([1, 1, 2])
    pool: list[float] = []
    runs: dict[str, float] = {}
    for model, variant in groups:
        for s in range(seeds):
            run_id = f"{model}__{variant}__s{s}"
            runs[run_id] = accuracy = _accuracy(rng, pool)
            _save(root, RELATIVE.model(run_id).train_record, {
                "model": model, "variant": variant, "seed": s, "epochs": rng.choice([2, 4]), "batch_size": 32,
                "train_time_s": rng.choice([10.0, round(rng.uniform(1, 100), 1)]), "params": 1000 * rng.randint(1, 900),
                "train_images": 450, "patch": None})
            _save(root, RELATIVE.model(run_id).eval.metrics, {"accuracy": accuracy, "num_samples": 100})
            recall = [rng.choice([accuracy, round(rng.uniform(0, 1), 3)]) for _ in CLASSES]
            _save(root, RELATIVE.model(run_id).eval.per_class, pd.DataFrame({"class": CLASSES, "recall": recall}))
    _save(root, RELATIVE.manifest, {"experiment": f"random{seed}", "updated": "2020-01-01T00:00:00"})
    ids = pd.Series(list(runs), dtype=str)
    frame = pd.DataFrame({"run": ids, "group": ids.map(group_of), "accuracy": list(runs.values())})
    comparison = frame.groupby("group", sort=False)["accuracy"].agg(["mean", "std", "size"]).reset_index()
    _save(root, RELATIVE.tables.comparison, pd.DataFrame({
        "model": comparison["group"].str.split("__").str[0], "variant": comparison["group"].str.split("__").str[1],
        "n_seeds": comparison["size"], "accuracy_mean": comparison["mean"], "accuracy_std": comparison["std"],
        "ece_mean": [rng.uniform(0, 0.2) for _ in comparison.index], "mce_mean": [rng.uniform(0.5, 1.5) for _ in comparison.index]}))
    gaps = [rng.choice([0.0, 0.005, rng.uniform(-0.15, 0.15)]) for _ in runs]
    _save(root, RELATIVE.tables.calibration, pd.DataFrame({
        "run": list(runs), "temperature": [rng.choice([1.0, round(rng.uniform(0.5, 2.0), 3)]) for _ in runs],
        "ece": [rng.choice([0.0008, 0.05, round(rng.uniform(0.001, 0.3), 4)]) for _ in runs],
        "ece_after_ts": [round(rng.uniform(0.001, 0.3), 4) for _ in runs], "accuracy": list(runs.values()),
        "mean_confidence": [min(1.0, max(0.0, a + g)) for a, g in zip(runs.values(), gaps)]}))
    families = rng.sample(list(CORRUPTIONS), rng.randint(1, 4))
    rows = []
    for run_id, accuracy in runs.items():
        rows.append({"model": run_id, "corruption": "clean", "severity": 0, "accuracy": accuracy, "ece": 0.05})
        for family in families:
            for corruption in CORRUPTIONS[family]:
                for severity in (1, 3):
                    change = rng.choice([0.0, 0.02, -rng.uniform(0, accuracy)])  # ties, gains, losses
                    rows.append({"model": run_id, "corruption": corruption, "severity": severity,
                                 "accuracy": min(1.0, accuracy + change), "ece": rng.uniform(0, 0.3)})
    _save(root, RELATIVE.tables.robustness_accuracy, pd.DataFrame(rows))
    _save(root, RELATIVE.tables.robustness_summary, pd.DataFrame({
        "run": list(runs), "mce": [rng.choice([1.0, rng.uniform(0.5, 1.5)]) for _ in runs],
        "relative_mce": [rng.uniform(0.5, 1.5) for _ in runs]}))
    probes = [{"run": r, "probe": p, "accuracy": rng.uniform(0, 1)} for r in runs for p in ("clean", "grayscale")]
    _save(root, RELATIVE.tables.stress_probes, pd.DataFrame(probes))
    _save_concepts(root, rng, runs)
    _save_benchmark(root, random.Random(10_000 + seed), runs)  # its own stream: the other tables stay as they were
    return root


def _save_benchmark(root: Path, rng: random.Random, runs: dict[str, float]) -> None:
    """Some runs benchmarked against a control twin: contrasts at the threshold, tied, negative, intervals at 0."""
    rows = []
    for run_id in [r for r in runs if rng.random() < 0.6]:
        for method in ("gradcam", "saliency", "lime", "baseline_random"):
            baseline = method.startswith("baseline_")
            contrast = 0.0 if baseline else rng.choice([0.0, 0.1, -0.05, round(rng.uniform(-0.2, 0.8), 4)])
            half = 0.0 if baseline else rng.choice([0.0, 0.1, round(rng.uniform(0, 0.3), 4)])
            control = rng.uniform(0, 0.9)
            rows.append({"run": run_id, "method": method, "kind": "baseline" if baseline else "method", "metric": "tko",
                         "reliant": control + contrast, "control": control, "contrast": contrast,
                         "contrast_low": contrast - half, "contrast_high": contrast + half, "threshold": 0.1,
                         "salience_driven": contrast - half <= 0 or contrast < 0.1,
                         "beats_baselines": None if baseline else rng.random() < 0.5,
                         "baselines_not_beaten": "" if baseline else rng.choice(["", "baseline_random"]),
                         "control_run": run_id.replace("__s", "_control__s")})
    if rows:
        table = pd.DataFrame(rows)
        table["rank"] = table.groupby("run")["contrast"].rank(ascending=False, method="min").astype(int)
        _save(root, RELATIVE.tables.xai_benchmark, table)


def _save_concepts(root: Path, rng: random.Random, runs: dict[str, float]) -> None:
    """Concept tables: equal and unequal shape biases, colour helping or hurting, tied detector depths."""
    summary = []
    for run_id, accuracy in runs.items():
        model, variant, seed = run_id.split("__")
        shape = rng.choice([0.0, 0.25, round(rng.uniform(0, 1), 4)])
        decided = rng.uniform(0, 1)
        summary.append({"run": run_id, "model": model, "variant": variant, "seed": int(seed[1:]),
                        "shape_bias": shape, "shape_decisions": shape * decided, "texture_decisions": (1 - shape) * decided,
                        "clean_accuracy": accuracy, "grayscale_accuracy": rng.choice([accuracy, round(rng.uniform(0, 1), 4)]),
                        "silhouette_accuracy": rng.uniform(0, 1), "outline_accuracy": rng.uniform(0, 1)})
    _save(root, RELATIVE.tables.concepts_summary, pd.DataFrame(summary))
    recall = [{"run": r, "class": c, "recall": rng.choice([0.5, rng.uniform(0, 1)]), "grayscale_recall": rng.choice([0.5, rng.uniform(0, 1)])}
              for r in runs for c in CLASSES[:3]]
    _save(root, RELATIVE.tables.concepts_colour_reliance,
          pd.DataFrame(recall).assign(colour_reliance=lambda t: t["recall"] - t["grayscale_recall"]))
    tcav = [{"run": r, "depth": d, "concept": c, "class_index": k, "class_name": CLASSES[k], "tcav": rng.uniform(0, 1),
             "random_tcav": 0.5, "p_corrected": rng.uniform(0, 1), "cav_accuracy": 1.0, "significant": rng.random() < 0.3}
            for r in runs for d in ("stage1", "stage2") for c in ("red", "stripes") for k in range(2)]
    _save(root, RELATIVE.tables.concepts_tcav, pd.DataFrame(tcav))
    owners = {r.split("__")[0]: r for r in reversed(list(runs))}  # the first run of each architecture
    untrained = [{**row, "run": owners[arch], "architecture": arch, "significant": rng.random() < 0.5}
                 for arch in owners for row in tcav if row["run"] == owners[arch]]
    _save(root, RELATIVE.tables.concepts_tcav_untrained, pd.DataFrame(untrained))
    detectors = [{"run": r, "depth": d, "concept": c, "units": 16, "detectors": rng.choice([0, 2, rng.randint(0, 16)])}
                 for r in runs for d in ("stem", "stage1", "stage2") for c in ("red", "blue", "patch")]
    _save(root, RELATIVE.tables.concepts_detectors, pd.DataFrame(detectors).assign(fraction=lambda t: t["detectors"] / t["units"]))


# -- checks -----------------------------------------------------------------------------------

PERCENT_CHANGE = re.compile(r"(-?\d+\.\d+)% -> (-?\d+\.\d+)% \(([+-]\d+\.\d+) pp\)")
DECIMAL_CHANGE = re.compile(r"(-?\d+\.\d+) -> (-?\d+\.\d+) \(([+-]\d+\.\d+)\)")
PAIRED = (re.compile(r"weakest on (.+?) corruptions .* strongest on (.+?) \("),
          re.compile(r"changes worst on (.+?) \(.* best on (.+?) \("),
          re.compile(r"^(.+?) (?:has|share) the highest test accuracy .*?and (.+?) (?:has|share) the lowest"),
          re.compile(r"^(.+?) trains fastest .*?\) and (.+?) slowest"))
"""Sentences naming two extremes: the same thing must never be both."""


def _renderings(value: float) -> set[str]:
    """The ways a rule may print ``value``."""
    if not math.isfinite(value):
        return {"inf"}
    shown = {f"{100 * value:.2f}", f"{value:.4f}", f"{value:.3f}", f"{value:.2f}", f"{value:.1f}",
             f"{100 * abs(value):.2f}", f"{value:+.3f}"}
    return shown | ({str(int(value))} if value == int(value) else set())


def check_sentence(finding: Finding) -> None:
    text = finding.text
    assert not re.search(r"--|\+-|-\+|\+\+", text), text  # one sign per number
    assert "nan" not in text.lower().split() and "nan%" not in text.lower(), text
    for before, after, change in PERCENT_CHANGE.findall(text):
        assert float(change) == pytest.approx(float(after) - float(before), abs=0.011), text
    for before, after, change in DECIMAL_CHANGE.findall(text):
        assert float(change) == pytest.approx(float(after) - float(before), abs=0.0011), text
    for pattern in PAIRED:
        if match := pattern.search(text):
            assert set(match[1].split(" and ")).isdisjoint(match[2].split(" and ")), text
    for key, value in finding.numbers.items():  # every number a finding carries is the one it quotes
        if key not in {"strengths", "weaknesses", "models"}:
            assert any(r in text for r in _renderings(float(value))), (key, value, text)


def check_against_tables(run: RunTables, findings: list[Finding]) -> None:
    near_chance = chance_level_groups(run)
    accuracy = pd.read_csv(run.layout.tables.comparison).assign(
        group=lambda t: t["model"] + "__" + t["variant"]).set_index("group")["accuracy_mean"]
    assert near_chance == set(accuracy.index[accuracy <= 0.1 + CHANCE_MARGIN])
    calibration = pd.read_csv(run.layout.tables.calibration).set_index("run")
    labels = run.labels(run.runs)
    families = robustness_families(run)
    by_rule: dict[str, list[Finding]] = {}
    for finding in findings:
        by_rule.setdefault(finding.rule, []).append(finding)
        assert finding.kind != "strength" or not {group_of(s) for s in finding.subjects} & near_chance, finding.text
    for finding in by_rule.get("chance_level", []):
        assert set(finding.subjects) == near_chance
    for finding in by_rule.get("calibration_extremes", []):
        (subject,) = finding.subjects
        assert group_of(subject) not in near_chance
        above = calibration[~calibration.index.map(group_of).isin(near_chance)]["ece"]
        assert finding.numbers["ece"] == (above.min() if finding.kind == "strength" else above.max())
    for finding in by_rule.get("temperature_scaling", []):
        (subject,) = finding.subjects
        gap = calibration.at[subject, "mean_confidence"] - calibration.at[subject, "accuracy"]
        if "the model was over-confident" in finding.text:
            assert gap >= CONFIDENCE_TOLERANCE, finding.text
        if "the model was under-confident" in finding.text:
            assert gap <= -CONFIDENCE_TOLERANCE, finding.text
    for finding in by_rule.get("worst_corruption_family", []):
        (model,) = finding.subjects
        rows = families[families["model"] == model]["mean_accuracy"]
        assert (finding.numbers["worst"], finding.numbers["best"]) == (rows.min(), rows.max())
    for finding in by_rule.get("variant_effects", []):
        model, variant = re.match(r"(\S+) with (\S+) instead", finding.text).groups()
        assert finding.numbers["accuracy_gain"] == pytest.approx(accuracy[f"{model}__{variant}"] - accuracy[f"{model}__baseline"])
    _check_concepts(run, by_rule)
    _check_benchmark(run, by_rule)
    for finding in by_rule.get("training_cost", []):
        setup = {r: json.loads(run.layout.model(r).train_record.read_text()) for r in run.runs}
        times = {labels[r]: s["train_time_s"] for r, s in setup.items()}
        assert finding.numbers["fastest_s"] == min(times.values()) and finding.numbers["slowest_s"] == max(times.values())
        if "took the same training time" in finding.text:
            assert len(set(times.values())) == 1
            continue
        fast = next(r for r in run.runs if finding.text.startswith(labels[r] + " trains fastest"))
        slow = next((r for r in run.runs if f") and {labels[r]} slowest" in finding.text), None)
        if slow is not None and setup[fast]["epochs"] != setup[slow]["epochs"]:
            assert f"epochs {setup[fast]['epochs']} vs {setup[slow]['epochs']}" in finding.text


def _check_concepts(run: RunTables, by_rule: dict[str, list[Finding]]) -> None:
    summary = pd.read_csv(run.layout.tables.concepts_summary).set_index("run")
    for finding in by_rule.get("concept_shape_bias", []):
        (subject,) = finding.subjects
        if "shape_bias_change" in finding.numbers:
            change = finding.numbers["shape_bias_change"]
            verb = "raises" if change > 0 else "lowers" if change < 0 else "leaves unchanged"
            assert f" {verb} shape bias" in finding.text, finding.text
        else:
            assert finding.numbers["shape_bias"] == summary.at[subject, "shape_bias"]
    for finding in by_rule.get("concept_colour_reliance", []):
        (subject,) = finding.subjects
        drop = summary.at[subject, "clean_accuracy"] - summary.at[subject, "grayscale_accuracy"]
        assert finding.numbers["grayscale_drop"] == pytest.approx(drop)
        assert ("loses" in finding.text.split(":")[0]) == (drop > 0), finding.text
    detectors = pd.read_csv(run.layout.tables.concepts_detectors)
    for finding in by_rule.get("concept_detectors", []):
        (subject,) = finding.subjects
        if "colour_detectors" in finding.numbers:
            colour = detectors[(detectors["run"] == subject) & detectors["concept"].isin(["red", "blue"])]
            per_depth = colour.groupby("depth")["detectors"].sum()
            assert finding.numbers["colour_detectors"] == per_depth.max()
            named = [d for d in per_depth.index if re.search(rf"\b{d}\b", finding.text)]
            assert per_depth.max() == 0 or sorted(named) == sorted(per_depth.index[per_depth == per_depth.max()]), finding.text


def _check_benchmark(run: RunTables, by_rule: dict[str, list[Finding]]) -> None:
    """Every explainer of every benchmarked run is named once, as surviving the control, as salience-driven (flagged
    and lit on the control) or as missing the patch (flagged, not lit on the control), with the table's contrast."""
    path = run.layout.tables.xai_benchmark
    methods = pd.read_csv(path).query("kind == 'method'") if path.is_file() else pd.DataFrame(columns=["run", "method"])
    named = []
    for finding in by_rule.get("patch_benchmark", []):
        (subject,) = finding.subjects
        lit, missed = "salience-driven" in finding.text, "too rarely" in finding.text
        driven = lit or missed
        assert driven == (finding.kind == "weakness"), finding.text  # the generator writes no patch reliance
        for method, contrast in finding.numbers.items():
            row = methods[(methods["run"] == subject) & (methods["method"] == method)].iloc[0]
            assert contrast == row["contrast"] and bool(row["salience_driven"]) == driven, finding.text
            assert not driven or (row["control"] >= row["threshold"]) == lit, finding.text
            named.append((subject, method))
    assert sorted(named) == sorted(zip(methods["run"], methods["method"]))


@pytest.mark.parametrize("seed", SEEDS)
def test_every_finding_is_true_of_its_tables(tmp_path: Path, seed: int) -> None:
    run = RunTables(random_run(tmp_path, seed))
    findings = run_rules(run)
    assert findings
    for finding in findings:
        check_sentence(finding)
    check_against_tables(run, findings)


def test_the_generator_covers_the_hard_cases(tmp_path: Path) -> None:
    """The seeds above include chance-level models, a single model, ties and negative changes, and maps that
    survive the control and maps that do not."""
    seen = {"chance": False, "single": False, "negative": False, "epochs_differ": False, "survives": False,
            "salience-driven": False}
    for seed in SEEDS:
        run = RunTables(random_run(tmp_path / str(seed), seed))
        text = "\n".join(f.text for f in run_rules(run))
        seen["chance"] |= bool(chance_level_groups(run))
        seen["single"] |= len(run.runs) == 1
        seen["negative"] |= "(-" in text
        seen["epochs_differ"] |= "recipes differ" in text
        seen["survives"] |= "survive" in text
        seen["salience-driven"] |= "salience-driven" in text
    assert all(seen.values()), seen


def _stage_literals() -> set[str]:
    """Every string literal (f-string parts included) in the stage packages: the file names they write."""
    package = Path(xaiquest.__file__).parent
    sources = [p for p in package.rglob("*.py") if p.relative_to(package).parts[0] not in {"report", "dashboard"}]
    return {node.value for source in sources for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def _written_by_a_stage(name: str, literals: set[str]) -> bool:
    """A stage spells the file's name (or, for tables named in code, its stem, as ``"stress_probes"``)."""
    base = PurePosixPath(name).name
    return any(base in literal or fnmatch(literal, base) or fnmatch(literal + PurePosixPath(base).suffix, base)
               for literal in literals)


def test_every_table_the_rules_read_is_declared_and_written_by_a_stage(tmp_path: Path, monkeypatch) -> None:
    """A renamed stage table fails here instead of silencing the rules that read it (they return [])."""
    read: set[str] = set()
    for method in ("csv", "json", "files"):
        def recording(self, rel, *args, _original=getattr(RunTables, method), **kwargs):
            read.add(rel)
            return _original(self, rel, *args, **kwargs)
        monkeypatch.setattr(RunTables, method, recording)
    for seed in SEEDS[:5]:
        run_rules(RunTables(random_run(tmp_path / str(seed), seed)))
    models = f"{RELATIVE.models.as_posix()}/"
    per_run = {re.sub(rf"^{models}[^/]+/", "", rel) for rel in read if rel.startswith(models)}
    run_level = {rel for rel in read if not rel.startswith(models)} - {RELATIVE.manifest.as_posix()}  # the run's models
    assert per_run == set(PER_RUN_FILES)
    assert {rel for rel in run_level if not any(fnmatch(rel, table) for table in STAGE_TABLES)} == set()
    assert {table for table in STAGE_TABLES if not any(fnmatch(rel, table) for rel in run_level)} == set()
    literals = _stage_literals()
    assert [name for name in (*STAGE_TABLES, *PER_RUN_FILES) if not _written_by_a_stage(name, literals)] == []
    assert {table for tables in EXPECTED_TABLES.values() for table in tables} <= set(STAGE_TABLES)
    assert set(EXPECTED_TABLES) <= set(STAGES)  # the report tells the reader to run `xaiquest <stage>`
