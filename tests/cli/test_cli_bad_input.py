"""Every malformed flag or file: one stderr line ``error: <field>: ...``, exit code 2, no traceback.

Table-driven: each case is an invocation (run in the folder of malformed files from conftest) and a
text the single error line must contain (the flag or field it names).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from energaizer.workers import available_cpus
from tests.cli.cli_support import Run, run_cli, run_cli_many

E = ["estimate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm"]
T = [*E, "--task", "training"]
S = ["sweep", "--gpu", "h100-sxm", "--model", "llama-3.1-8b"]
P = ["plan", "--demo", "--demo-jobs", "20"]

CASES: list[tuple[list[str], str]] = [
    # --- usage -------------------------------------------------------------------------------------
    (
        ["no-such-command"],
        "no-such-command: no such command (allowed: estimate, gpus, models, calibrate, validate, sweep, plan, ",
    ),
    (["estmate"], "estmate: no such command; did you mean 'estimate'? (allowed: estimate, "),
    (["estimate", "--jsn"], "--jsn: no such option (Possible options: --json, --ops)"),
    (["estimate", "--no-such-flag"], "--no-such-flag"),
    (["estimate", "--gpu"], "--gpu"),
    (["sweep"], "--gpu"),
    (["validate"], "MEASUREMENTS"),
    (["calibrate", "x.csv"], "--output"),
    (["estimate", "--model", "llama-3.1-8b", "--model-file", "arch.yaml"], "model"),
    (["estimate", "--gpu", "h100-sxm"], "model"),
    # --- names and choices -------------------------------------------------------------------------
    (["estimate", "--model", "no-such-model", "--gpu", "h100-sxm"], "model"),
    ([*E[:3], "--gpu", "h900"], "gpu"),
    ([*E, "--precision", "fp64"], "--precision"),
    ([*E, "--task", "fine-tuning"], "--task"),
    ([*E, "--attention", "sparse"], "--attention"),
    (["sweep", "--gpu", "h900", "--model", "llama-3.1-8b"], "gpu"),
    # --- numbers: text, NaN, infinities, signs, absurd sizes ---------------------------------------
    ([*E, "--requests", "lots"], "--requests"),
    ([*E, "--requests", "1e30"], "--requests"),
    ([*E, "--requests", "-5"], "--requests"),
    ([*E, "--requests", "0"], "--requests"),
    ([*E, "--requests", "99999999999999999999999"], "--requests"),
    ([*E, "--batch-size", "999999999"], "batch_size"),
    ([*E, "--input-tokens", "0"], "--input-tokens"),
    ([*E, "--output-tokens", "-1"], "--output-tokens"),
    ([*E, "--gpu-count", "0"], "--gpu-count"),
    ([*E, "--gpu-count", "1000"], "--gpu-count"),
    ([*E, "--gpu-count", "100000"], "--gpu-count"),
    ([*E, "--frequency-mhz", "nan"], "not a number"),
    ([*E, "--frequency-mhz", "inf"], "--frequency-mhz"),
    ([*E, "--frequency-mhz", "-100"], "--frequency-mhz"),
    ([*E, "--power-limit-w", "NaN"], "not a number"),
    ([*E, "--power-limit-w", "5"], "power_limit_w"),
    ([*E, "--power-limit-w", "1e9"], "--power-limit-w"),
    ([*T, "--tokens", "nan"], "not a number"),
    ([*T, "--tokens", "inf"], "--tokens"),
    ([*T, "--tokens", "-1e9"], "--tokens"),
    ([*T, "--tokens", "1e40"], "--tokens"),
    ([*T, "--steps", "0"], "--steps"),
    ([*T, "--steps", "10", "--global-batch-size", "4", "--gpu-count", "64"], "--gpu-count"),
    (
        [*T, "--steps", "10", "--tensor-parallel", "3", "--gpu-count", "8"],
        "--tensor-parallel: gpu_count must be",
    ),
    (
        [*T[:2], "llama-1-13b", *T[3:], "--steps", "10", "--tensor-parallel", "3", "--gpu-count", "6"],
        "--tensor-parallel: tensor parallel 3 does not divide the 40 attention heads",
    ),
    (
        [
            *E[:2],
            "llama-1-13b",
            *E[3:],
            "--gpu-count",
            "64",
            "--tensor-parallel",
            "4",
            "--data-parallel",
            "2",
        ],
        "--gpu-count: tensor parallel 32 (--gpu-count / --data-parallel) does not divide",
    ),
    # --- sizes of the other task -------------------------------------------------------------------
    ([*T, "--tokens", "1e9", "--requests", "5"], "--requests"),
    ([*T, "--tokens", "1e9", "--batch-size", "8"], "--batch-size"),
    ([*E, "--tokens", "1e9"], "--tokens"),
    ([*E, "--recompute"], "--recompute"),
    ([*T, "--steps", "10", "--prompt-logits"], "--prompt-logits: is for inference"),
    (
        ["estimate", "--model", "vit-large", "--gpu", "h100-sxm", "--output-tokens", "0", "--prompt-logits"],
        "--prompt-logits: vit-large has no vocabulary",
    ),
    ([*T], "tokens"),
    # --tokens N or --steps N, not both: the steps won silently over a different token count
    ([*T, "--tokens", "1e6", "--steps", "10"], "--steps: give tokens or steps, not both"),
    # --- sweep ------------------------------------------------------------------------------------
    ([*S, "--max-slowdown", "-1"], "--max-slowdown"),
    ([*S, "--max-slowdown", "nan"], "not a number"),
    ([*S, "--max-slowdown", "inf"], "--max-slowdown"),
    ([*S, "--max-slowdown", "50"], "--max-slowdown"),  # the library's and the AIJob's bound (10), not 100
    ([*S, "--points", "1"], "--points"),
    ([*S, "--gpu-count", "2", "--data-parallel", "4"], "--data-parallel"),
    ([*S, "--points", "100000"], "--points"),
    # --- plan flags --------------------------------------------------------------------------------
    ([*P, "--demo-load", "nan"], "not a number"),
    ([*P, "--demo-load", "0"], "--demo-load"),
    ([*P, "--demo-jobs", "0"], "--demo-jobs"),
    ([*P, "--price-per-kwh", "nan"], "not a number"),
    ([*P, "--price-per-kwh", "-1"], "--price-per-kwh"),
    ([*P, "--carbon-g-per-kwh", "inf"], "--carbon-g-per-kwh"),
    ([*P, "--energy-slack", "inf"], "--energy-slack"),
    ([*P, "--max-wait-s", "nan"], "not a number"),
    ([*P, "--seed", "-1"], "--seed"),
    ([*P, "--limit", "0"], "--limit"),
    ([*P, "--policy", "random"], "--policy"),
    ([*P, "--reference-gpu", "h900"], "--reference-gpu"),
    ([*P, "--add-pool", "h100"], "--add-pool"),
    ([*P, "--add-pool", "h900:1x8"], "--add-pool"),
    ([*P, "--add-pool", "h100-sxm:0x8"], "--add-pool"),
    ([*P, "--power-limit-w", "nosuch=100"], "--power-limit-w"),
    ([*P, "--power-limit-w", "l4=nan"], "--power-limit-w"),
    ([*P, "--power-limit-w", "l4=-5"], "--power-limit-w"),
    ([*P, "--plots", "plain-file"], "--plots"),
    ([*P, "--csv", "no-such-folder/out.csv"], "--csv"),
    ([*P, "--csv", "a-folder"], "--csv"),
    ([*P, "--csv", "/dev/full"], "--csv: cannot write /dev/full: No space left on device"),
    ([*P, "--plots", "plain-file/sub"], "--plots: cannot make plain-file/sub: "),
    (["plan", "--demo", "--trace", "trace_nan.csv"], "--trace"),
    (["plan", "--trace", "trace_nan.csv"], "--pools"),
    # --- files: missing, folders, binary, other encodings, malformed, out of range ------------------
    (["estimate", "--model-file", "no-such.yaml", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "a-folder", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "binary.yaml", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "binary.json", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "latin1.yaml", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "latin1.json", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "empty.txt", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "list.yaml", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "scalar.json", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "bad.yaml", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "bad.json", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "deep.json", "--gpu", "h100-sxm"], "--model-file"),
    (["estimate", "--model-file", "arch_nan.yaml", "--gpu", "h100-sxm"], "layers"),
    (["estimate", "--model-file", "arch_negative.yaml", "--gpu", "h100-sxm"], "layers"),
    (["estimate", "--model-file", "arch_huge.yaml", "--gpu", "h100-sxm"], "layers"),
    (["estimate", "--model-file", "arch_text.yaml", "--gpu", "h100-sxm"], "layers"),
    (["estimate", "--model-file", "arch_heads.yaml", "--gpu", "h100-sxm"], "multiple of heads"),
    (
        ["estimate", "--model-file", "arch_dupkey.yaml", "--gpu", "h100-sxm"],
        "--model-file: arch_dupkey.yaml is not valid YAML/JSON (key 'layers' appears twice in one mapping at line 6)",
    ),
    (
        ["estimate", "--model-file", "arch_dupkey.json", "--gpu", "h100-sxm"],
        "--model-file: arch_dupkey.json is not valid YAML/JSON (key 'layers' appears twice in one object)",
    ),
    ([*E, "--profile", "profile_dupkey.json"], "key 'compute_efficiency' appears twice in one object"),
    (
        ["gpus", "--catalog", "catalog_dupkey.yaml"],
        "catalog_dupkey.yaml: not valid YAML: key 'id' appears twice",
    ),
    (
        ["plan", "--pools", "pools_dupkey.yaml", "--trace", "trace_nan.csv"],
        "pools: pools_dupkey.yaml: malformed YAML (key 'gpu' appears twice in one mapping at line 1)",
    ),
    ([*E, "--profile", "no-such.json"], "error: profile: file not found: no-such.json"),
    ([*E, "--profile", "a-folder"], "error: profile: a-folder is a directory, not a file"),
    ([*E, "--profile", "binary.bin"], "error: profile: binary.bin is a binary file"),
    ([*E, "--profile", "latin1.json"], "error: profile: latin1.json is not UTF-8 text"),
    ([*E, "--profile", "bad.json"], "profile"),
    ([*E, "--profile", "scalar.json"], "profile"),
    ([*E, "--profile", "deep.json"], "profile"),
    ([*E, "--profile", "profile_nan.json"], "compute_efficiency"),
    ([*E, "--profile", "profile_neg.json"], "compute_efficiency"),
    ([*E, "--profile", "profile_unknown.json"], "no_such_parameter"),
    ([*E, "--catalog", "binary.bin"], "catalog"),
    ([*E, "--catalog", "latin1.yaml"], "catalog"),
    ([*E, "--catalog", "no-such.yaml"], "no-such.yaml"),
    ([*E, "--catalog", "empty.txt"], "--catalog: empty.txt adds no GPU or model"),
    (["gpus", "--catalog", "catalog_empty.yaml"], "--catalog: catalog_empty.yaml adds no GPU or model"),
    (["models", "--catalog", "catalog_empty.json"], "--catalog: catalog_empty.json adds no GPU or model"),
    (["gpus", "--catalog", "catalog_bad.yaml"], "gpus[0]"),
    (["models", "--catalog", "catalog_key.yaml"], "nonsense"),
    (["models", "--catalog", "bad.yaml"], "bad.yaml"),
    (["gpus", "--catalog", "deep.json"], "deep.json"),
    (["gpus", "--catalog", "bigint.json"], "bigint.json"),
    (["models", "--catalog", "bigint.yaml"], "bigint.yaml"),
    ([*E, "--profile", "bigint.json"], "profile"),
    (["estimate", "--from-csv", "no-such.csv"], "not found"),
    (["estimate", "--from-csv", "a-folder"], "csv"),
    (["estimate", "--from-csv", "binary.bin"], "csv"),
    (["estimate", "--from-csv", "latin1.csv"], "csv"),
    (["estimate", "--from-csv", "utf16.csv"], "csv"),
    (["estimate", "--from-csv", "empty.txt"], "csv"),
    (["estimate", "--from-csv", "w_header_only.csv"], "csv"),
    (["estimate", "--from-csv", "w_nul.csv"], "csv"),
    (["estimate", "--from-csv", "w_ragged.csv"], "csv"),
    (["estimate", "--from-csv", "w_nan.csv"], "frequency_mhz"),
    (["estimate", "--from-csv", "w_inf.csv"], "tokens"),
    (["estimate", "--from-csv", "w_neg.csv"], "requests"),
    (["estimate", "--from-csv", "w_huge.csv"], "gpu_count"),
    (["estimate", "--from-csv", "w_mix.csv"], "training"),
    (["estimate", "--from-csv", "/dev/zero"], "csv"),  # no newline, ever: never read into memory
    (["estimate", "--model-file", "/dev/zero", "--gpu", "l4"], "--model-file"),
    (["plan", "--pools", "pools.yaml", "--trace", "/dev/zero"], "trace"),
    (["estimate", "--from-csv", "w_gpu.csv"], "w_gpu.csv line 2: unknown gpu"),
    (["estimate", "--from-csv", "w_model.csv"], "w_model.csv line 2: unknown model"),
    (["plan", "--pools", "binary.bin", "--trace", "trace_nan.csv"], "pools"),
    (["plan", "--pools", "latin1.yaml", "--trace", "trace_nan.csv"], "pools"),
    (["plan", "--pools", "bad.yaml", "--trace", "trace_nan.csv"], "pools"),
    (["plan", "--pools", "a-folder", "--trace", "trace_nan.csv"], "pools"),
    (["plan", "--pools", "pools_neg.yaml", "--trace", "trace_nan.csv"], "nodes"),
    (["plan", "--pools", "pools_nan.yaml", "--trace", "trace_nan.csv"], "nodes"),
    (["plan", "--pools", "pools_gpu.yaml", "--trace", "trace_nan.csv"], "gpu"),
    (["plan", "--pools", "pools_huge.yaml", "--trace", "trace_nan.csv"], "nodes"),
    (["plan", "--pools", "pools_neg.yaml", "--trace", "binary.bin"], "pools"),
    (["plan", "--demo", "--pools", "pools_neg.yaml"], "nodes"),
    (["plan", "--pools", "../a-folder/none.yaml", "--trace", "x.csv"], "pools"),
    *[
        (["plan", "--pools", "pools.yaml", "--trace", name], field)
        for name, field in (
            ("binary.bin", "trace"),
            ("latin1.csv", "trace"),
            ("a-folder", "trace"),
            ("no-such.csv", "trace"),
            ("empty.txt", "submit_time_s"),
            ("trace_nohdr.csv", "submit_time_s"),
            ("trace_nan.csv", "submit_time_s"),
            ("trace_inf.csv", "duration_s"),
            ("trace_neg.csv", "gpu_count"),
            ("trace_dup.csv", "gpu_count: trace_dup.csv line 1: the header names this column twice"),
            ("trace_dup_id.csv", "job_id: trace_dup_id.csv line 4: 'a' is also the job_id of line 2"),
        )
    ],
    # --- validate / calibrate ----------------------------------------------------------------------
    (["validate", "binary.bin"], "csv"),
    (["validate", "latin1.csv"], "csv"),
    (["validate", "m_unmeasured.csv"], "measured_energy_joules"),
    (["validate", "m_empty_cell.csv"], "measured_energy_joules"),
    (["validate", "m_negative.csv"], "measured_energy_joules"),
    (["validate", "m_zero.csv"], "measured_energy_joules"),
    (["validate", "m_nan.csv"], "measured_energy_joules"),
    (
        ["validate", "m_dup.csv"],
        "requests: m_dup.csv line 1: the header names this column twice (columns 3 and 4)",
    ),
    (
        ["estimate", "--from-csv", "m_dup.csv"],
        "requests: m_dup.csv line 1: the header names this column twice",
    ),
    (["validate", "m_negative.csv", "--worst", "-1"], "--worst"),
    (
        ["validate", "m_one.csv", "a-folder/../m_one.csv"],
        "MEASUREMENTS: a-folder/../m_one.csv is named twice (also as m_one.csv)",
    ),
    (["calibrate", "m_one.csv", "m_one.csv", "-o", "p.json"], "MEASUREMENTS: m_one.csv is named twice"),
    (["calibrate", "m_negative.csv", "-o", "out.json"], "measured_energy_joules"),
    (["calibrate", "m_unmeasured.csv", "-o", "out.json"], "measured_energy_joules"),
    (["calibrate", "binary.bin", "-o", "out.json"], "csv"),
    (["calibrate", "m_infeasible.csv", "-o", "out.json", "--force"], "line 2 on t4: does not fit"),
    (["calibrate", "m_zero.csv", "-o", "a-folder"], "--output"),
    (["calibrate", "m_zero.csv", "-o", "no-such-folder/p.json"], "--output"),
    (
        ["calibrate", "m_one.csv", "-o", "/dev/full", "--force", "--max-evaluations", "1"],
        "--output: cannot write /dev/full: No space left on device",
    ),
    (["calibrate", "m_zero.csv", "-o", "p.json", "--parameters", "nonsense"], "--parameters"),
    (["calibrate", "m_zero.csv", "-o", "p.json", "--max-evaluations", "0"], "--max-evaluations"),
    (["calibrate", "m_zero.csv", "-o", "p.json", "--folds", "1"], "--folds: 1 fold holds out every row"),
    (["calibrate", "m_zero.csv", "-o", "p.json", "--profile", "binary.bin"], "profile"),
    (["estimate", "--from-csv", "w_neg.csv", "--model", "llama-3.1-8b"], "--model"),
    (["estimate", "--from-csv", "w_neg.csv", "--gpu", "h100-sxm"], "--gpu"),
    # a per-row flag at its default value is as much a clash as any other value (not silently ignored)
    (["estimate", "--from-csv", "w_neg.csv", "--gpu-count", "1"], "--gpu-count: cannot be combined"),
    (["estimate", "--from-csv", "w_neg.csv", "--precision", "bf16"], "--precision: cannot be combined"),
    (["estimate", "--from-csv", "w_neg.csv", "--task", "inference"], "--task: cannot be combined"),
    (["estimate", "--from-csv", "w_neg.csv", "--attention", "auto"], "--attention: cannot be combined"),
    (["estimate", "--from-csv", "w_neg.csv", "--execution", "auto"], "--execution: cannot be combined"),
    (["estimate", "--model", "gpt2", "--workers", "2"], "--workers"),
    (["estimate", "--from-csv", "w_neg.csv", "--workers", "-1"], "--workers"),
    # --- operator ----------------------------------------------------------------------------------
    (["operator", "--namespace", "a", "--all-namespaces"], "--namespace"),
    (["operator", "--namespace", "Not_A_Namespace"], "--namespace"),
]


def _id(case: tuple[list[str], str]) -> str:
    return " ".join(case[0])[:80]


@pytest.fixture(scope="module")
def bad_runs(request: pytest.FixtureRequest, bad_files: Path) -> dict[int, Run]:
    """The run of every selected case (by its index in CASES), as many at a time as there are CPUs (at
    least two). Each is a process of its own that reads its inputs and writes nothing, so they are
    independent; each a fork of one process that imported the CLI (``run_cli_many``): ~190 cold starts
    took ~45 s of CI on a loaded machine."""
    selected = sorted(
        item.callspec.params["index"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_malformed_invocation_is_one_error_line_exit_2"
    )
    (bad_files / "pools.yaml").write_text("- {gpu: h100-sxm, nodes: 1, gpus_per_node: 8}\n")
    runs = run_cli_many([CASES[i][0] for i in selected], bad_files, jobs=max(2, available_cpus()))
    return dict(zip(selected, runs, strict=True))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[_id(c) for c in CASES])
def test_malformed_invocation_is_one_error_line_exit_2(bad_runs: dict[int, Run], index: int) -> None:
    _, needle = CASES[index]
    r = bad_runs[index]
    assert "Traceback" not in r.err, r.err
    assert r.code == 2, (r.code, r.err)
    assert len(r.err_lines) == 1, r.err
    line = r.err_lines[0]
    assert line.startswith("error: ") and len(line) > len("error: x: "), line
    assert needle in line, line
    assert r.out == "", r.out  # nothing half-printed on stdout


def test_internal_errors_are_one_line_with_exit_1(tmp_path: Path) -> None:
    """A bug (not the user's input) is also one line, exit 1, with the traceback behind ENERGAIZER_DEBUG."""
    boom = tmp_path / "sitecustomize.py"
    boom.write_text(
        "import energaizer.cli.catalog_cmd as c\n"
        "import energaizer.catalog as cat\n"
        "def _boom():\n    raise RuntimeError('injected')\n"
        "cat.list_gpus = _boom\n"
    )
    r = run_cli("gpus", env={"PYTHONPATH": str(tmp_path)})
    assert r.code == 1 and len(r.err_lines) == 1, r.err
    assert r.err_lines[0].startswith("error: internal: RuntimeError") and "injected" in r.err
    r = run_cli("gpus", env={"PYTHONPATH": str(tmp_path), "ENERGAIZER_DEBUG": "1"})
    assert r.code == 1 and "Traceback" in r.err and "injected" in r.err


def test_plots_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    fake = tmp_path / "matplotlib"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    r = run_cli(
        "plan",
        "--demo",
        "--demo-jobs",
        "20",
        "--plots",
        str(tmp_path / "out"),
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "--plots" in r.err and "energaizer[plot]" in r.err


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KUBECONFIG": "no-such-kubeconfig"}, "KUBECONFIG"),
        ({"KUBECONFIG": "binary.bin"}, "KUBECONFIG"),
        ({"KUBECONFIG": "bad.yaml"}, "KUBECONFIG"),
        ({"ENERGAIZER_BATCH_WINDOW_SECONDS": "soon"}, "ENERGAIZER_BATCH_WINDOW_SECONDS"),
    ],
)
def test_operator_without_a_cluster_or_with_bad_settings(
    bad_files: Path, env: dict[str, str], needle: str
) -> None:
    """No usable kubeconfig (and not in a pod), or a bad ENERGAIZER_* value: one line before kopf starts."""
    env = {"KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": "", **env}
    r = run_cli("operator", "--namespace", "team-a", cwd=bad_files, env=env, timeout=120)
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert r.err_lines[0].startswith(f"error: {needle}: "), r.err
