"""`python -m benchmarks.run` (or `gan-parity`): train the same GANs in PyTorch and TensorFlow, time them, store the
results, build the report.

The flags become one typed request (benchmarks/plan.py Request); benchmarks/job.py validates it into a Plan
before anything is written and runs it. Exit codes: benchmarks/cli.py. Nothing imports this module.
"""
from __future__ import annotations

if __name__ == "__main__":  # first, before the libraries import: a Ctrl-C there is one line and 130
    from benchmarks import exit_on_early_interrupt

    exit_on_early_interrupt()

import argparse
import sys
from pathlib import Path

from benchmarks import cli, executor, job, plan, store, sweep
from common import specfile
from common import tasks as task_registry
from common.backend import MODES
from common.spec import DTYPES, IMPLEMENTATIONS, LOSSES, OPTIMIZERS

EPILOG = """examples:
  python -m benchmarks.run --backend both                 # the quick suite (< 10 min on 2 CPU cores)
  python -m benchmarks.run --backend torch --task parabola --steps 500 --mode eager
  python -m benchmarks.run --backend tf --task mnist --loss wgan-gp --num-seeds 3 --out results/wgan --resume
  python -m benchmarks.run --backend both --task parabola gmm2 --num-seeds 4 --executor ray --ray-address HEAD:6379
"""


def steps(text: str) -> int | str:
    """--steps: a number of steps, or quick / full."""
    return text if text in plan.STEP_CHOICES else cli.integer(1)(text)


def make_parser() -> cli.Parser:
    parser = cli.Parser(
        prog="python -m benchmarks.run", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the same GANs in PyTorch and TensorFlow from identical weights and data, time "
                    "every step, score the samples, and append one record per run to OUT/runs.jsonl.")
    cli.add_backend(parser)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--task", nargs="+", metavar="T", help="task(s) to run, each once (see --list); default: the "
                      "quick suite")
    what.add_argument("--spec", metavar="FILE", help="your own GAN: a TOML spec file (--print-spec TASK writes any "
                      "task as one), trained like a built-in task")
    what.add_argument("--print-spec", metavar="TASK", help="write TASK as a spec file to standard output and exit")
    what.add_argument("--suite", choices=("quick", "full"),
                      help=f"quick (the default): {', '.join(task_registry.QUICK_SUITE)} at their quick length; "
                           "full: every task at its own full length (hours)")
    parser.add_argument("--steps", type=steps, default="quick", metavar="N|quick|full",
                        help="training steps per run: a number; quick (the default: each task's quick length, "
                             "minutes, eager modes a share of it); or full (the task's own length: up to 400 000 "
                             "steps, hours)")
    parser.add_argument("--loss", choices=LOSSES, help="override the task's loss (applies that loss's defaults)")
    parser.add_argument("--optimizer", choices=OPTIMIZERS,
                        help="the optimiser algorithm of both networks (default: the task's, or its loss's)")
    parser.add_argument("--optimizer-impl", nargs="+", choices=IMPLEMENTATIONS, metavar="IMPL",
                        help="one or more implementations of it: spec (identical formulas in both backends; the "
                             "default), native (torch.optim / keras.optimizers as users run them), native-foreach, "
                             "native-fused (torch.optim's foreach=True / fused=True; PyTorch only)")
    parser.add_argument("--lr", type=cli.learning_rate, help="learning rate of both networks (default: the task's)")
    parser.add_argument("--d-lr", type=cli.learning_rate, help="the discriminator's learning rate (over --lr)")
    parser.add_argument("--g-lr", type=cli.learning_rate, help="the generator's learning rate (over --lr)")
    parser.add_argument("--d-steps", type=cli.integer(1), help="discriminator updates per generator update "
                        "(default: the task's, or its loss's)")
    parser.add_argument("--batch-size", type=cli.integer(1), help="batch size (default: the task's)")
    parser.add_argument("--seed", type=cli.integer(0), default=0, help="the first seed (default 0)")
    parser.add_argument("--num-seeds", type=cli.integer(1, plan.MAX_RUNS), metavar="N",
                        help="seeds per configuration: seed, seed+1, ... (default 1; at the quick length a toy "
                             "task runs several seeds of each framework's representative mode)")
    parser.add_argument("--mode", choices=[*MODES, "all"],
                        help="eager, compiled (torch.compile / tf.function), xla (TF only) or all; default: the "
                             "quick plan's configurations")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="floating-point type of weights, optimiser state and inputs, in both frameworks "
                             "(default float32; float64 is the strong parity check, and slower)")
    cli.add_device(parser)
    cli.add_threads(parser)
    parser.add_argument("--steps-per-call", type=cli.integer(1), nargs="+", default=[1], metavar="K",
                        help="steps per trainer call (train_steps), one or more values; per-step time = call time / K")
    parser.add_argument("--pack", type=cli.integer(1), nargs="+", default=[1], metavar="M",
                        help="PacGAN packing: D judges packs of M examples (default 1, the plain GAN); several values "
                             "run one cell each (common/spec.py GAN.pack)")
    parser.add_argument("--data-dir", help="folder with the task's data (MNIST files, a face folder)")
    parser.add_argument("--data", metavar="PATH", help="with --spec: the array file, image folder or data set folder "
                        "to use instead of the one the file names")
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--resume", action="store_true", help="skip cells already in OUT/runs.jsonl with the same "
                        "config; continue unfinished ones from their checkpoint")
    parser.add_argument("--checkpoint-every", type=cli.integer(1), metavar="N", help="save a checkpoint every N steps")
    parser.add_argument("--warmup", type=cli.integer(0), help="untimed warm-up steps (default max(5, 2%% of steps))")
    parser.add_argument("--list", action="store_true", help="print the tasks and exit")
    parser.add_argument("--sweep", choices=sweep.KINDS, help="instead of training runs: time step cost against "
                        "batch size or layer width (task mnist-small unless --task names one) into OUT/sweep.csv")
    parser.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    parser.add_argument("--no-floor", action="store_true", help="with two or more backends, skip the chaos floor: the "
                        "three extra runs per task and seed of the first backend, each with its units and batches "
                        "in another order")
    parser.add_argument("--tensorboard", metavar="DIR", help="also write each run's losses, D outputs, step times "
                        "and sample grids as TensorBoard event files under DIR, one folder per run")
    parser.add_argument("--executor", choices=executor.EXECUTORS, default="local",
                        help="local (the default): the cells one after another in this process; ray: as Ray tasks "
                             "on a cluster (needs the cluster extra), this process storing every result")
    parser.add_argument("--ray-address", metavar="ADDR", help="--executor ray: the cluster to join (what `ray start "
                        "--head` printed; default $RAY_ADDRESS, else a local Ray instance started for the run)")
    parser.add_argument("--no-timing", action="store_true",
                        help="metrics only: the runs' step times are labelled as not comparable and left out of the "
                             "report's speed sections; with --executor ray, cells share nodes (packed by --threads)")
    parser.add_argument("--retries", type=cli.integer(0, 100), default=executor.RETRIES,
                        help=f"--executor ray: times a cell is run again when its worker or node died (default "
                             f"{executor.RETRIES})")
    return parser


def request_of(args: argparse.Namespace, command: list[str]) -> plan.Request:
    """The parsed flags as a typed plan.Request (the only place that reads ``args``)."""
    return plan.Request(
        backends=args.backend, tasks=tuple(args.task) if args.task else None, suite=args.suite,
        spec_file=args.spec, data_path=args.data,
        steps=args.steps, overrides=task_registry.Overrides(
            loss=args.loss, batch_size=args.batch_size, lr=args.lr, d_lr=args.d_lr, g_lr=args.g_lr,
            d_steps=args.d_steps, optimizer=args.optimizer),
        optimizer_impls=tuple(args.optimizer_impl) if args.optimizer_impl else None, dtype=args.dtype,
        seed=args.seed, num_seeds=args.num_seeds, mode=args.mode, device=args.device, threads=args.threads,
        steps_per_call=tuple(args.steps_per_call), packs=tuple(args.pack), data_dir=args.data_dir, out=args.out,
        resume=args.resume, checkpoint_every=args.checkpoint_every, warmup=args.warmup, report=not args.no_report,
        floor=not args.no_floor, tensorboard=args.tensorboard, executor=args.executor,
        ray_address=args.ray_address, timing=not args.no_timing, retries=args.retries, command=tuple(command))


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    request = request_of(args, sys.argv[1:] if argv is None else list(argv))
    if args.list:
        import pandas as pd

        print(pd.DataFrame(task_registry.describe_tasks()).to_string(index=False))
        return cli.EXIT_OK
    if args.print_spec:
        return cli.run_command(lambda: print_spec(args.print_spec), kept="nothing was written")
    if args.sweep:
        return sweep.run_from_request(args.sweep, request)
    runs = Path(request.out) / store.RUNS_FILE
    return cli.run_command(lambda: job.run(request)[0], kept=f"finished runs are kept in {runs}; runs in progress were not "
                           "recorded. Continue with the same command plus --resume",
                           kept_after_write_error=f"the runs finished before it are kept in {runs}; fix the cause, "
                           "then run the same command plus --resume")


def print_spec(name: str) -> int:
    with cli.checking_input():
        text = specfile.task_to_toml(task_registry.get_task(name))
    sys.stdout.write(text)
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
