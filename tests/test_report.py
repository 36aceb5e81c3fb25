"""The report on a tiny real run of the harness: every section, embedded images, GIFs with several frames,
numbers taken from the records, robustness to missing backends and flagged runs, and the CLI's errors."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import report, run, store, timing
from benchmarks.report import samples
from benchmarks.report.doc import label, title
from benchmarks.store import SWEEP_FILE
from benchmarks.report.faster import best_configuration, speed_verdict, task_speed
from benchmarks.report.runs import Histories
from benchmarks.report.summary import QUESTIONS, SUMMARY_TABLE_ID
from benchmarks.report.tasks import TASK_SUBSECTIONS

ROOT = Path(__file__).resolve().parents[1]
# The harness runs in this process: PyTorch on one thread (conftest.one_torch_thread; its default threads made a small
# model's eager step up to 60x slower on a loaded 2-core machine). The runs record the thread count they ran with.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Parabola with two seeds (multi-seed section) and mnist-small with one, both backends, eager."""
    out = tmp_path_factory.mktemp("results")
    patch = pytest.MonkeyPatch()
    patch.setattr(timing, "SGEMM_SIZE", 128)  # the 2048 measurement is for real runs
    try:
        common = ["--backend", "both", "--mode", "eager", "--out", str(out), "--no-report"]
        assert run.main(["--task", "parabola", "--steps", "20", "--num-seeds", "2", *common]) == 0
        assert run.main(["--task", "mnist-small", "--steps", "8", *common]) == 0
    finally:
        patch.undo()
    report.build_report(out)
    return out


def read(out: Path) -> tuple[str, str]:
    return (out / report.REPORT_MD).read_text(encoding="utf-8"), (out / report.REPORT_HTML).read_text(encoding="utf-8")


def test_every_section_is_in_both_documents(results):
    md, page = read(results)
    headings = [title(("torch", "tf")), *report.SECTIONS, "Task: parabola", "Task: mnist-small", *TASK_SUBSECTIONS]
    for heading in headings:
        assert re.search(rf"^#+ {re.escape(heading)}$", md, re.M), heading
        assert re.search(rf"<h\d[^>]*>{re.escape(heading)}</h\d>", page), heading
    assert "no sweep in this run (python -m benchmarks.sweep --sweep batch" in md.lower()


def test_html_is_self_contained_and_md_links_exist(results):
    md, page = read(results)
    pngs = sorted((results / report.FIGURES).glob("*.png"))
    gifs = sorted((results / report.FIGURES).glob("*.gif"))
    assert len(gifs) == 4  # two tasks x two backends
    assert page.count('src="data:image/png;base64,') == len(pngs) >= 10
    assert page.count('src="data:image/gif;base64,') == len(gifs)
    assert "src=\"figures/" not in page
    links = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", md)
    assert {Path(link).name for link in links} == {p.name for p in pngs + gifs}
    for png in pngs:
        with Image.open(png) as image:
            assert image.width > 300 and image.height > 200


def test_gifs_animate_every_snapshot(results):
    records = store.read_records(results)
    for task in ("parabola", "mnist-small"):
        record = next(r for r in records if r["task"] == task and r["backend"] == "torch" and r["seed"] == 0)
        steps = store.read_history(results, record["history"])["snapshot_steps"]
        for backend in ("torch", "tf"):
            with Image.open(results / report.FIGURES / f"{task}-progress-{backend}.gif") as gif:
                assert gif.n_frames == len(steps) > 5
                first = np.asarray(gif.convert("RGB"))
                gif.seek(gif.n_frames - 1)
                last = np.asarray(gif.convert("RGB"))
                assert not np.array_equal(first, last)  # the samples moved


def test_summary_is_one_table_of_linked_verdicts_from_the_records(results):
    md, page = read(results)
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    table = [line for line in summary.splitlines() if line.startswith("| ")]
    assert table[0] == "| task | " + " | ".join(QUESTIONS) + " |"
    rows = {line.split(" | ")[0][2:]: line for line in table[1:]}
    assert set(rows) == {"parabola", "mnist-small"}
    for task, row in rows.items():
        links = re.findall(r"\[([^\]]+)\]\(#([^)]+)\)", row)
        assert len(links) == 3, row
        for _, anchor in links:  # every verdict lands on its evidence, in both documents
            assert f'id="{anchor}"' in page and f'<a id="{anchor}"></a>' in md
        model, samples_cell, faster = (text for text, _ in links)
        assert model.startswith("yes: drift at most"), model  # same computation, rounding apart
        runs = [r for r in store.read_records(results) if r["task"] == task and r["init"] == "seed"]
        histories = Histories(results)
        speed = task_speed(runs, histories)
        assert faster == speed_verdict(speed) and "95% CI" in faster
    assert rows["mnist-small"].count("one seed each: cannot test (run python -m benchmarks.run --backend both "
                                     "--task mnist-small --num-seeds 3 or more)") == 1
    assert "](#task-mnist-small)" in rows["mnist-small"]  # one seed: the link goes to the task's metrics
    assert "](#samples-parabola)" in rows["parabola"]  # two seeds: to the equivalence tests
    assert f'<table class="dataframe" id="{SUMMARY_TABLE_ID}">' in page
    assert "AMD" in summary or "Intel" in summary or "cores" in summary


def test_faster_is_best_against_best_with_its_interval(results):
    runs = [r for r in store.read_records(results) if r["task"] == "parabola" and r["init"] == "seed"]
    best = {b: best_configuration(runs, b) for b in ("torch", "tf")}
    assert [r["seed"] for r in best["torch"]] == [0, 1] and {r["mode"] for r in best["tf"]} == {"eager"}
    speed = task_speed(runs, Histories(results))
    pooled = {b: np.concatenate([store.read_history(results, r["history"])["step_time"][
        store.read_history(results, r["history"])["timed"]] for r in best[b]]) for b in best}
    assert speed["ratio"] == pytest.approx(np.median(pooled["tf"]) / np.median(pooled["torch"]))
    assert speed["low"] <= speed["ratio"] <= speed["high"]
    md, _ = read(results)
    faster = md.split("## Faster? Best against best", 1)[1].split("\n## ", 1)[0]
    assert '<a id="speed-parabola"></a>' in faster and speed_verdict(speed) in faster


def test_multi_seed_and_divergence_sections_hold_results(results):
    md, _ = read(results)
    multi = md.split("## Multi-seed comparison", 1)[1]
    assert "### parabola" in multi and "in_band" in multi and "(n=2)" in multi
    divergence = md.split("## Same-seed trajectory divergence", 1)[1].split("\n## ", 1)[0]
    assert "PyTorch eager vs TF eager, seed 0" in divergence and "PyTorch eager vs TF eager, seed 1" in divergence
    assert (results / report.FIGURES / "parabola-divergence.png").exists()
    assert "Digit judge" in md and "accuracy on held-out real digits" in md


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Parabola in every backend (--backend all), two seeds, eager: three pairs, each with its floor and seeds."""
    out = tmp_path_factory.mktemp("three")
    patch = pytest.MonkeyPatch()
    patch.setattr(timing, "SGEMM_SIZE", 128)
    try:
        assert run.main(["--backend", "all", "--task", "parabola", "--steps", "20", "--num-seeds", "2", "--mode",
                         "eager", "--out", str(out), "--no-report"]) == 0
    finally:
        patch.undo()
    report.build_report(out)
    return out


PAIRS = (("torch", "tf"), ("torch", "jax"), ("tf", "jax"))  # every pair, in registry order


def section(md: str, heading: str) -> str:
    return md.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def test_three_backends_give_every_pair_its_verdicts(three):
    """One summary row per pair, each verdict its section's for that pair; drops one pair and a test here fails."""
    from benchmarks.report.doc import pair_label

    md, page = read(three)
    assert md.startswith("# GAN parity suite: PyTorch vs TensorFlow vs JAX\n")
    assert "<title>GAN parity suite: PyTorch vs TensorFlow vs JAX</title>" in page
    table = [line for line in section(md, "Summary").splitlines() if line.startswith("| ")]
    assert table[0] == "| task | pair | " + " | ".join(QUESTIONS) + " |"
    rows = [line.split(" | ") for line in table[1:]]
    assert [(row[0][2:], row[1]) for row in rows] == [("parabola", pair_label(pair)) for pair in PAIRS]
    runs = [r for r in store.read_records(three) if r["init"] == "seed"]
    for pair, row in zip(PAIRS, rows):
        model, samples_cell, faster = (text for text, _ in re.findall(r"\[([^\]]+)\]\(#([^)]+)\)", " | ".join(row)))
        assert model.startswith("yes: drift at most"), model  # one computation, rounding apart, in every pair
        assert samples_cell.split(":")[0] in ("yes", "inconclusive", "different"), samples_cell  # tested: 2 seeds
        assert faster == speed_verdict(task_speed(runs, Histories(three), pair)) and "95% CI" in faster
    from benchmarks.report.multiseed import more_seeds_command

    command = more_seeds_command("parabola", 5, ("torch", "jax"))  # what an undecided pair's verdict asks to run
    assert command == "python -m benchmarks.run --backend torch jax --task parabola --num-seeds 5"
    assert run.make_parser().parse_args(command.split()[3:]).backend == ("torch", "jax")

    divergence = section(md, "Same-seed trajectory divergence")
    for first, second in PAIRS:
        for seed in (0, 1):
            [line] = [x for x in divergence.splitlines() if x.startswith(f"| {label(first, 'eager')} vs "
                                                                         f"{label(second, 'eager')}, seed {seed} |")]
            assert "| within the floor |" in line
    multi = section(md, "Multi-seed comparison")
    headers = [x for x in multi.splitlines() if x.startswith("| metric |")]
    assert headers == [f"| metric | better | {label(a, 'eager')} | {label(b, 'eager')} | p (Welch) | margin ± | "
                       "p (TOST) | verdict |" for a, b in PAIRS]
    faster_md = section(md, "Faster? Best against best")
    assert [x.split(" | ")[6] for x in faster_md.splitlines() if x.startswith("| task |")] == \
        ["TF / PyTorch", "JAX / PyTorch", "JAX / TF"]
    best = [x for x in section(md, "Speed").splitlines() if x.startswith("| task | PyTorch fastest")]
    assert [f"best vs best, {pair_label(pair)}" in best[0] for pair in PAIRS] == [True] * 3


def copy_results(results: Path, dest: Path, keep, edit=lambda r: r) -> Path:
    """A copy of the results folder holding only the records ``keep`` accepts, each passed through ``edit``."""
    dest.mkdir()
    shutil.copytree(results / store.HISTORY_DIR, dest / store.HISTORY_DIR)
    lines = [json.dumps(edit(r)) for r in store.read_records(results) if keep(r)]
    (dest / store.RUNS_FILE).write_text("\n".join(lines) + "\n")
    return dest


def test_one_backend_and_a_flagged_run_still_build(results, tmp_path):
    def flag(record):
        if record["seed"] == 1:
            record.update(status="diverged", diverged_at_step=7, flags=["d_saturated"], metrics={})
        return record

    out = copy_results(results, tmp_path / "torch-only", lambda r: r["backend"] == "torch" and r["task"] == "parabola",
                       flag)
    report.build_report(out)
    md, page = read(out)
    flags = md.split("## Flags and diverged runs", 1)[1].split("\n## ", 1)[0]
    assert "> **Warning:**" in flags and "d_saturated" in flags and "diverged" in flags
    assert '<div class="warn">' in page
    assert "no TensorFlow run for parabola" in md
    assert "[needs timed runs of both frameworks](#speed)" in md
    assert "no task ran several seeds in both backends" in md.lower()
    assert "no seed ran in both backends" in md


def test_a_sweep_csv_is_plotted(results, tmp_path):
    out = copy_results(results, tmp_path / "with-sweep", lambda r: r["task"] == "parabola")
    rows = ["sweep,value,backend,mode,median_s,p25_s,p75_s,steps_per_s"]  # benchmarks/sweep.py's columns (and more)
    for r in store.read_records(out):  # the runs' own timings stand in for two sweep points each
        for value, scale in ((64, 1.0), (128, 1.5)):
            m = r["median_step_s"] * scale
            rows.append(f"batch,{value},{r['backend']},{r['mode']},{m},{m * 0.9},{m * 1.1},{1 / m}")
    (out / SWEEP_FILE).write_text("\n".join(rows) + "\n")
    report.build_report(out)
    md, _ = read(out)
    sweep = md.split("## Scaling sweep", 1)[1].split("\n## ", 1)[0]
    assert "figures/sweep.png" in sweep and "no sweep" not in sweep.lower()


def test_cli_without_runs_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.report", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "runs.jsonl" in result.stderr
    with pytest.raises(ValueError, match="runs.jsonl"):
        report.build_report(tmp_path)
    assert not (tmp_path / report.REPORT_HTML).exists()


def test_face_grids_read_rows_in_channel_height_width_order():
    faces = -np.ones((64, 3, 64, 64), dtype=np.float32)
    faces[:, 0] = 1.0  # red channel full on: every face must come out pure red
    faces[0, :, :32] = 1.0  # first face: top half white
    grid = samples.image_grid(faces.reshape(64, -1), (3, 64, 64))
    gap = samples.GRID_GAP
    assert grid.shape == (8 * (64 + gap) + gap,) * 2 + (3,)
    np.testing.assert_array_equal(grid[gap + 40, gap + 10], [255, 0, 0])
    np.testing.assert_array_equal(grid[gap + 10, gap + 10], [255, 255, 255])
    digits = samples.image_grid(np.zeros((10, 784), dtype=np.float32), (1, 28, 28))
    assert digits.ndim == 2 and digits[gap + 5, gap + 5] == 128  # 0 in [-1, 1] is mid grey


def speed_record(backend, mode, step_s, optimizer="spec", k=1, compile_s=0.0, task="parabola"):
    return {"task": task, "backend": backend, "mode": mode, "seed": 0, "status": "finished", "timed_steps": 10,
            "median_step_s": step_s, "compile_s": compile_s, "steps_per_call": k,
            "config": {"optimizer": optimizer, "threads": None}}


def test_best_and_out_of_the_box_name_each_fastest_configuration():
    from benchmarks.report import speed
    from benchmarks.report.doc import Doc

    runs = [speed_record("torch", "eager", 2e-3, "native"), speed_record("torch", "compiled", 0.5e-3, compile_s=3.0),
            speed_record("torch", "eager", 1.5e-3), speed_record("tf", "eager", 40e-3, "native"),
            speed_record("tf", "xla", 0.2e-3, k=100, compile_s=2.0), speed_record("tf", "compiled", 0.4e-3, compile_s=1.0),
            speed_record("tf", "eager", 30e-3), speed_record("torch", "compiled", 3e-3, "native", compile_s=5.0)]
    doc = Doc()
    speed.best_against_out_of_the_box(doc, runs)
    tables = [b[1] for b in doc.blocks if b[0] == "table"]
    row = tables[0].iloc[0]
    assert row["PyTorch fastest"] == "PyTorch torch.compile: 500 µs" and row["PyTorch out of the box"] == "2 ms"
    assert row["TensorFlow fastest"] == "TF XLA K=100: 200 µs" and row["TensorFlow out of the box"] == "40 ms"
    assert row["best vs best"] == "TensorFlow 2.50x faster" and row["out of the box"] == "PyTorch 20.00x faster"
    paybacks = dict(zip(tables[1]["compiled run"], tables[1]["pays back after"]))
    # torch.compile: 3 s / (1.5 - 0.5) ms = 3 000 steps; tf.function 1 s / 29.6 ms = 34; compiled native is slower
    # than eager native: never; XLA K=100 has no eager K=100 run to pay back against
    assert paybacks == {"PyTorch torch.compile seed 0": "3,000 steps", "TF tf.function seed 0": "34 steps",
                        "PyTorch torch.compile native seed 0": "never (not faster)"}


def test_speed_compares_runs_of_one_host_only_and_leaves_packed_runs_out(tmp_path):
    from benchmarks.report import speed
    from benchmarks.report.doc import Doc

    def on(host, backend, step_s, timing_mode="exclusive"):
        r = speed_record(backend, "eager", step_s)
        r.update(p25_step_s=step_s, p75_step_s=step_s, timing_mode=timing_mode,
                 environment={"host": host, "cpu": f"cpu of {host}", "cpu_count": 2, "devices": {backend: "cpu"}})
        return r

    runs = [on("a", "torch", 1e-3), on("a", "tf", 2e-3), on("b", "torch", 4e-3), on("b", "tf", 1e-4, "packed")]
    doc = Doc()
    speed.speed_section(doc, runs, report.FigureFolder(tmp_path))
    headings = [b[2] for b in doc.blocks if b[0] == "heading"]
    assert headings == ["Speed", "On a (cpu of a, 2 cores; cpu)", "Best and out of the box",
                        "On b (cpu of b, 2 cores; cpu)", "Best and out of the box"]
    texts = " ".join(b[1] for b in doc.blocks if b[0] == "text")
    assert "1 run(s) were metrics-only" in texts
    best = [b[1].iloc[0] for b in doc.blocks if b[0] == "table" and "PyTorch fastest" in b[1]]
    assert [row["PyTorch fastest"] for row in best] == ["PyTorch eager: 1 ms", "PyTorch eager: 4 ms"]
    assert best[0]["best vs best"] == "PyTorch 2.00x faster" and best[1]["TensorFlow fastest"] == "—"
    assert sorted(p.name for p in tmp_path.glob("speed-step-time*")) == ["speed-step-time-host1.png",
                                                                         "speed-step-time-host2.png"]
    # The summary's verdict judges one host, the one with the most timed runs (b's packed TF run is no figure)
    from benchmarks.report import faster

    def histories(r):
        return {"step_time": [r["median_step_s"]] * 10, "timed": [True] * 10}

    speed_ = faster.task_speed(runs, histories)
    assert speed_["host"] == "a" and [r["environment"]["host"] for rs in speed_["best"].values() for r in rs] == ["a", "a"]
    assert faster.speed_verdict(speed_).startswith("on a: PyTorch eager, 2.00x faster than TF eager")


def pacgan_record(backend, mode, seed, pack, modes, hq, steps=1000):
    return {"task": "grid25-pacgan", "backend": backend, "mode": mode, "seed": seed, "status": "finished",
            "steps_per_call": 1, "timed_steps": 10, "median_step_s": 0.1,
            "config": {"pack": pack, "steps": steps, "optimizer": "spec", "threads": 1},
            "metrics": {"modes_covered": modes, "high_quality_pct": hq, "mode_kl": 0.5}}


def test_published_section_sets_the_papers_rows_beside_each_framework():
    from benchmarks.report.doc import Doc
    from benchmarks.report.published import published_section
    runs = [pacgan_record("torch", "eager", s, 1, m, 95.0) for s, m in enumerate((17, 18, 17))]
    runs += [pacgan_record("tf", "xla", s, 1, m, 94.5) for s, m in enumerate((18, 17, 16))]
    runs += [pacgan_record("torch", "eager", s, 4, m, 90.0) for s, m in enumerate((12, 13, 12))]  # far below 24.8
    runs += [pacgan_record("tf", "xla", s, 4, m, 91.0) for s, m in enumerate((12, 12, 13))]
    doc = Doc()
    published_section(doc, {"grid25-pacgan": runs, "parabola": []})
    [table] = [b[1] for b in doc.blocks if b[0] == "table"]
    assert list(table["row"].unique()) == ["GAN (pack 1)", "PacGAN4 (pack 4)"]  # no runs at pack 2, 3: no rows
    gan = table[(table["row"] == "GAN (pack 1)") & (table["metric"] == "modes_covered")].iloc[0]
    assert gan["paper (± standard error, n=10)"] == "17.3 ± 0.8"
    assert gan["PyTorch eager"] == "17.3 ± 0.58 (n=3)" and gan["PyTorch vs paper"] == "consistent with the paper"
    assert gan["PyTorch vs TF (Welch)"] == "no significant difference"
    pac4 = table[(table["row"] == "PacGAN4 (pack 4)") & (table["metric"] == "modes_covered")].iloc[0]
    assert pac4["TF vs paper"].startswith("differs: lower (p = ") and "outside the paper's 95% interval" in pac4["TF vs paper"]
    [warning] = [b[1] for b in doc.blocks if b[0] == "warn"]
    assert "1 000 steps" in warning and "400 000" in warning
    empty = Doc()
    published_section(empty, {"parabola": []})
    assert any(b[0] == "text" and "No run of a task with published figures" in b[1] for b in empty.blocks)


def test_a_configuration_timed_on_a_step_or_two_is_no_candidate_for_fastest():
    """The quick suite's dcgan-mnist eager cells time one step: their median is no evidence of the fastest."""
    from common.metrics import SPEED_MIN_TIMED_STEPS

    lucky = {**speed_record("torch", "eager", 0.3), "timed_steps": 1}
    compiled = {**speed_record("torch", "compiled", 0.4), "timed_steps": SPEED_MIN_TIMED_STEPS}
    assert best_configuration([lucky, compiled], "torch") == [compiled]
    assert best_configuration([lucky, {**compiled, "timed_steps": SPEED_MIN_TIMED_STEPS - 1}], "torch") == [lucky]


def test_the_environment_names_each_frameworks_settings_from_its_own_runs():
    """Two one-backend folders read together: the table names both frameworks' versions, devices, threads and peaks,
    not only the latest run's."""
    from benchmarks.report.doc import Doc
    from benchmarks.report.environment import environment_section

    def run_of(backend, package, version, threads, peak):
        env = {"host": "vm", "cpu": "AMD EPYC", "date": f"2026-12-02 ({backend})", "versions": {"python": "3.11.7", package: version},
               "devices": {backend: "cpu"}, "configure": {backend: {"intra_op_threads": threads, "inter_op_threads": 1}}}
        return {"backend": backend, "environment": env, "sgemm_gflops": {backend: peak}}

    doc = Doc()
    environment_section(doc, [run_of("torch", "torch", "2.13.0", 2, 118.0), run_of("tf", "tensorflow", "2.21.0", 0, 101.0)])
    [table] = [b[1] for b in doc.blocks if b[0] == "table"]
    value = dict(zip(table["setting"], table["value"]))
    assert value["versions"] == "python 3.11.7, torch 2.13.0, tensorflow 2.21.0"
    assert value["devices"] == "PyTorch: cpu, TensorFlow: cpu"
    assert value["threads (intra / inter-op; 0 = framework default)"] == "PyTorch 2 / 1; TensorFlow 0 / 1"
    assert value["matmul peak (sgemm, GFLOP/s)"] == "torch 118, tf 101"
    assert value["date of the latest run"] == "2026-12-02 (tf)"
