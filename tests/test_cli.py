"""The command line without traps (issue 25): every flag a user reaches for does what its name says, a single
--task finishes in minutes unless asked for more, and a plan that would take hours says so before it starts."""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from benchmarks import cli, plan, run, sweep
from common import tasks
from conftest import planned, request_of

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
def test_a_single_task_runs_its_quick_length_unless_asked_for_more(name):
    task = tasks.get_task(name)
    backends = {"torch": __import__("backend_torch")}
    quick, _, _ = planned("--task", name, "--backend", "torch", "--mode", "compiled", backends=backends)
    assert {c.steps for c in quick} == {task.quick_steps}
    if task.steps is not None:  # the epoch-based tasks need their data set's size for their full length
        full, _, _ = planned("--task", name, "--backend", "torch", "--mode", "compiled", "--steps", "full",
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
    assert {config for config, s in seeds.items() if s == many} == plan.REPRESENTATIVE
    assert all(s == {0} for config, s in seeds.items() if config not in plan.REPRESENTATIVE)
    assert {c.seed for c in cells if c.init != "seed"} == {0}  # the chaos floor's twins: of the first seed
    mnist, _, _ = planned("--task", "mnist", "--backend", "both")
    assert {c.seed for c in mnist} == {0}  # a run costs minutes here: one seed, and the report says how to get more


def test_threads_are_capped_by_this_machine_only_when_the_cells_run_here():
    many = str(cli.CPUS + 1)
    with pytest.raises(ValueError, match="logical CPUs"):
        plan.check_executor(request_of("--threads", many))
    ray = request_of("--threads", many, "--executor", "ray")
    assert ray.threads == cli.CPUS + 1  # a cluster's nodes may have more cores than this driver


def test_sweep_and_run_default_to_the_same_device():
    assert run.make_parser().parse_args([]).device == "auto"
    assert sweep.make_parser().parse_args(["--sweep", "batch"]).device == "auto"
    assert sweep.SweepPlan("batch").device == "auto"


def test_help_describes_the_suite_as_it_is():
    text = run.make_parser().format_help()
    assert "MLP GANs" not in text
    assert ", ".join(tasks.QUICK_SUITE) in " ".join(text.split())  # --suite's help names the quick suite's tasks


def test_a_plan_of_hours_is_announced_before_it_starts():
    request = request_of("--task", "ring8-pacgan", "--backend", "torch", "--mode", "compiled", "--steps", "full",
                         "--no-floor")
    cells, _, _ = planned("--task", "ring8-pacgan", "--backend", "torch", "--mode", "compiled", "--steps", "full",
                          "--no-floor")
    the_plan = plan.Plan(request, "custom", tuple(cells), tuple(cells), {}, (), {}, {}, None)
    lines = plan.preview(the_plan, peak_gflops=400.0)  # a fast CPU: even so, 400 000 steps take hours
    assert lines[-1].startswith("WARNING: this plan trains for at least") and " h" in lines[-1]
    assert "ring8-pacgan: 1 runs of 400000 steps" in lines[0]
    quick, _, _ = planned("--task", "ring8-pacgan", "--backend", "torch", "--mode", "compiled", "--no-floor")
    short = plan.Plan(request, "custom", tuple(quick), tuple(quick), {}, (), {}, {}, None)
    assert not plan.preview(short, peak_gflops=400.0)[-1].startswith("WARNING")


def test_the_estimate_takes_recorded_step_times_where_the_folder_has_them():
    cells, _, _ = planned("--task", "gmm2", "--backend", "torch", "--mode", "eager", "--steps", "1000")
    record = {"status": "finished", "timing_mode": "exclusive", "task": "gmm2", "backend": "torch", "mode": "eager",
              "loss": "nonsaturating", "seed": 0, "config": cells[0].config, "wall_s": 12.0, "median_step_s": 0.01,
              "steps_done": 1000}
    seconds, from_records = plan.estimate_seconds(cells, 100.0, [record])
    assert from_records == 1 and seconds == pytest.approx(12.0)  # 2 s fixed + 1000 steps of 10 ms


def test_a_console_script_runs_the_main_job():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["gan-parity"].split(":")
    assert (module, function) == ("benchmarks.run", "main")


def test_nothing_imports_the_main_job_and_no_import_hides_in_a_function():
    """No module of the package imports benchmarks/run.py, and none imports another of the suite's modules inside
    a function (the way an import cycle is hidden)."""
    ours = ("benchmarks", "common", "backend_torch", "backend_tf")
    for path in sorted(p for package in ours for p in (ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                names += [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
                assert "benchmarks.run" not in names, f"{path.relative_to(ROOT)}:{node.lineno} imports benchmarks.run"
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ours:
                    raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module} inside "
                                         f"{function.name}()")
