"""The command line without traps: every flag a user reaches for does what its name says, a single
--task finishes in minutes unless asked for more, and a plan that would take hours says so before it starts."""
from __future__ import annotations

import ast
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import cli, job, plan, run, sweep
from common import metrics, tasks
from conftest import planned, request_of

# The harness runs in this process: PyTorch on one thread (conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]


def parse_error(capsys, parser, *argv) -> str:
    with pytest.raises(SystemExit) as stop:
        parser.parse_args([str(a) for a in argv])
    assert stop.value.code == cli.EXIT_BAD_INPUT
    return capsys.readouterr().err.strip()


def test_optimizer_names_the_algorithm_and_optimizer_impl_its_implementation():
    cells, _, _ = planned("--backend", "torch", "--task", "parabola", "--mode", "eager", "--steps", "5",
                          "--optimizer", "rmsprop", "--optimizer-impl", "spec", "native", "--lr", "1e-3")
    assert {(c.spec.d_optimizer.name, c.spec.g_optimizer.name) for c in cells} == {("rmsprop", "rmsprop")}
    assert sorted(c.spec.d_optimizer.implementation for c in cells) == ["native", "spec"]
    assert {c.spec.d_optimizer.lr for c in cells} == {1e-3}
    assert all(c.config["algorithm"] == "rmsprop" for c in cells)  # --resume tells an Adam run from this one
    cells, _, _ = planned("--backend", "torch", "--task", "parabola", "--mode", "eager", "--steps", "5",
                          "--loss", "wasserstein", "--optimizer", "adam")
    assert {c.spec.d_optimizer.name for c in cells} == {"adam"}  # over the loss's own RMSprop
    assert {c.spec.d_optimizer.lr for c in cells} == {5e-5}  # the loss's learning rate, kept


def test_an_implementation_is_no_longer_an_algorithm(capsys):
    assert "invalid choice: 'native'" in parse_error(capsys, run.make_parser(), "--optimizer", "native")


@pytest.mark.parametrize("make_parser", [run.make_parser, sweep.make_parser], ids=["run", "sweep"])
def test_backend_takes_names_in_registry_order_or_one_group_alone(capsys, make_parser):
    extra = [] if make_parser is run.make_parser else ["--sweep", "batch"]
    named = {"torch jax": ("torch", "jax"), "jax tf": ("tf", "jax"), "jax": ("jax",), "both": ("torch", "tf"),
             "all": ("torch", "tf", "jax"), "jax tf torch": ("torch", "tf", "jax")}  # registry order, whatever given
    for words, names in named.items():
        assert make_parser().parse_args([*extra, "--backend", *words.split()]).backend == names
    assert make_parser().parse_args(extra).backend == ("torch", "tf")  # the default: both
    for words, why in ((["torch", "torch"], "'torch' is named twice"), (["both", "jax"], "'both' stands alone"),
                       (["tf", "all"], "'all' stands alone"), (["both", "both"], "'both' stands alone"),
                       (["pt"], "invalid choice: 'pt'"), ([], "expected at least one argument")):
        error = parse_error(capsys, make_parser(), *extra, "--backend", *words)
        assert error.startswith("error: argument --backend: ") and why in error and len(error.splitlines()) == 1


def test_per_network_learning_rates_and_d_steps_reach_the_spec():
    cells, _, _ = planned("--backend", "tf", "--task", "gmm2", "--mode", "eager", "--steps", "5", "--lr", "1e-3",
                          "--g-lr", "4e-4", "--d-steps", "3")
    spec = cells[0].spec
    assert (spec.d_optimizer.lr, spec.g_optimizer.lr, spec.updates.d_steps) == (1e-3, 4e-4, 3)
    assert cells[0].config["d_steps"] == 3 and cells[0].config["g_lr"] == 4e-4


@pytest.mark.parametrize("flag", ["--d-lr", "--g-lr"])
def test_per_network_learning_rates_are_checked_like_lr(capsys, flag):
    assert "float32's normal range" in parse_error(capsys, run.make_parser(), flag, "1e-45")


def test_seed_and_the_number_of_seeds_cannot_be_confused(capsys):
    parser = run.make_parser()
    assert "unrecognized arguments: --seeds 3" in parse_error(capsys, parser, "--seeds", "3")
    assert "unrecognized arguments: --num 3" in parse_error(capsys, parser, "--num", "3")  # no abbreviations
    cells, _, _ = planned("--backend", "torch", "--task", "gmm2", "--mode", "eager", "--steps", "5", "--seed", "7",
                          "--num-seeds", "2")
    assert sorted(c.seed for c in cells) == [7, 8]


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_a_single_task_runs_its_quick_length_unless_asked_for_more(name, tmp_path, monkeypatch):
    task = tasks.get_task(name)
    backends = {"torch": __import__("backend_torch")}
    data = []
    if task.needs_data_dir:  # a few faces, decoded into a cache of the test's own
        monkeypatch.setenv("GAN_SUITE_CACHE", str(tmp_path / "cache"))
        rng = np.random.default_rng(0)
        for i in range(metrics.MIN_SAMPLES):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        data = ["--data-dir", tmp_path, "--batch-size", 2]
    quick, _, _ = planned("--task", name, "--backend", "torch", "--mode", "compiled", *data, backends=backends)
    assert {c.steps for c in quick} == {task.quick_steps}
    if task.steps is not None:  # the epoch-based tasks need their data set's size for their full length
        full, _, _ = planned("--task", name, "--backend", "torch", "--mode", "compiled", "--steps", "full", *data,
                             backends=backends)
        assert {c.steps for c in full} == {task.steps}


def test_the_quick_length_runs_several_seeds_of_each_frameworks_representative_mode_on_the_toys():
    cells, _, suite = planned("--task", "parabola", "--backend", "both")
    seeds = {}
    for c in cells:
        if c.init == "seed":
            seeds.setdefault((c.backend, c.mode, c.spec.d_optimizer.implementation), set()).add(c.seed)
    many = set(range(tasks.get_task("parabola").quick_seeds))
    assert len(many) >= 3  # enough for the equivalence test to decide
    assert {config for config, s in seeds.items() if s == many} == {c for c in plan.REPRESENTATIVE if c[0] != "jax"}
    assert all(s == {0} for config, s in seeds.items() if config not in plan.REPRESENTATIVE)
    assert {c.seed for c in cells if c.init != "seed"} == {0}  # the chaos floor's twins: of the first seed
    mnist, _, _ = planned("--task", "mnist", "--backend", "both")
    assert {c.seed for c in mnist} == {0}  # a run costs minutes here: one seed, and the report says how to get more


def test_the_quick_length_times_each_frameworks_k_step_graph_where_a_task_asks_for_it():
    """parabola (Task.quick_steps_per_call = 8) gets one K-step cell per framework's fastest path, a whole number of
    calls, seed 0; the other tasks, and any run that names its modes or K, get none."""
    cells, _, _ = planned("--backend", "all")
    k_cells = [c for c in cells if c.steps_per_call > 1]
    assert {(c.task.name, c.backend, c.mode, c.spec.d_optimizer.implementation, c.seed) for c in k_cells} == \
        {("parabola", *config, 0) for config in plan.QUICK_K_PLAN}
    k = tasks.get_task("parabola").quick_steps_per_call
    assert k > 1 and all(c.steps_per_call == k and c.steps % k == 0 and c.steps >= k for c in k_cells)
    assert all(c.init == "seed" for c in k_cells)  # the floor's twins stay those of the one-step cells
    for flags in (("--mode", "compiled"), ("--steps-per-call", "4"), ("--optimizer-impl", "spec"), ("--steps", "40")):
        cells, _, _ = planned("--task", "parabola", "--backend", "both", *flags)
        assert {c.steps_per_call for c in cells} <= {1, 4}, flags


def test_threads_are_capped_by_this_machine_only_when_the_cells_run_here():
    many = str((os.cpu_count() or 1) + 1)
    with pytest.raises(ValueError, match="logical CPUs"):
        plan.check_executor(request_of("--threads", many))
    ray = request_of("--threads", many, "--executor", "ray")
    assert ray.threads == int(many)  # a cluster's nodes may have more cores than this driver


def test_sweep_and_run_default_to_the_same_device():
    assert run.make_parser().parse_args([]).device == "auto"
    assert sweep.make_parser().parse_args(["--sweep", "batch"]).device == "auto"
    assert sweep.SweepPlan("batch").device == "auto"


def test_help_describes_the_suite_as_it_is():
    text = run.make_parser().format_help()
    assert "MLP GANs" not in text
    assert ", ".join(tasks.QUICK_SUITE) in " ".join(text.split())  # --suite's help names the quick suite's tasks


def test_a_plan_of_hours_is_announced_before_it_starts(tmp_path):
    """PacGAN at its full 400 000 steps: the FLOP bound alone (minutes at a fast CPU's peak) cannot see the per-step
    costs, so the preview measures a step of the model and warns; the quick length is not warned about."""
    flags = ["--task", "ring8-pacgan", "--backend", "torch", "--mode", "compiled", "--out", tmp_path / "out"]
    full = plan.make_plan(request_of(*flags, "--steps", "full"))
    probe = lambda cell: job.eager_step_seconds(full, cell)  # noqa: E731
    lines = plan.preview(full, peak_gflops=400.0, probe=probe)
    assert "ring8-pacgan: 1 runs of 400000 steps, seed 0 (torch compiled)" in lines[0]
    assert "measured eager step" in lines[-2] and lines[-1].startswith("WARNING: this plan trains for about")
    bound = plan.estimate(full.todo, 400.0, [])
    assert bound.lower_bound and bound.seconds < plan.LONG_PLAN_S  # what the FLOP model alone would have said
    quick = plan.make_plan(request_of(*flags))
    assert not plan.preview(quick, peak_gflops=400.0, probe=probe)[-1].startswith("WARNING")
    assert not (tmp_path / "out").exists()  # planning writes nothing


def test_the_estimate_takes_recorded_step_times_where_the_folder_has_them():
    cells, _, _ = planned("--task", "gmm2", "--backend", "torch", "--mode", "eager", "--steps", "1000")
    record = {"status": "finished", "timing_mode": "exclusive", "task": "gmm2", "backend": "torch", "mode": "eager",
              "loss": "nonsaturating", "seed": 0, "config": cells[0].config, "wall_s": 12.0, "median_step_s": 0.01,
              "steps_done": 1000}
    guess = plan.estimate(cells, 100.0, [record])
    assert not guess.lower_bound and guess.seconds == pytest.approx(12.0)  # 2 s fixed + 1000 steps of 10 ms


def test_a_console_script_runs_the_main_job():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["gan-parity"].split(":")
    assert (module, function) == ("benchmarks.run", "main")


def import_graph() -> dict[str, set[str]]:
    """module -> the suite's modules it imports, at module level or inside a function (``from pkg import name``
    counts as pkg.name where that is a module, else as pkg)."""
    modules = {}
    for package in OURS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module in modules:
                edges |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}
        graph[name] = edges - {name}
    return graph


OURS = ("benchmarks", "common", "backend_torch", "backend_tf")


def test_the_import_graph_has_no_cycle_and_nothing_imports_the_main_job():
    """Counting imports inside functions too (the way a cycle hides), the suite's modules import each other without
    a cycle, and none imports benchmarks/run.py (the main job). A package's __init__ importing its own submodules is
    not a cycle."""
    graph = import_graph()
    assert graph["benchmarks.sweep"] and "benchmarks.cli" in graph["benchmarks.sweep"]  # the graph sees imports
    assert not [m for m, edges in graph.items() if "benchmarks.run" in edges]
    state = {}

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph[module]):
            if other.startswith(module + "."):
                continue  # a package importing its submodule
            if state.get(other) == "open":
                cycle = path[path.index(other):] + [other]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, path + [other])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
