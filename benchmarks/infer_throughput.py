"""Throughput of recursive inference: the batched engine against the authors' one-sequence engine.

    python benchmarks/infer_throughput.py                  # forced reference tokens, default architecture
    python benchmarks/infer_throughput.py --run runs/add   # a trained run, free greedy decoding

Both engines solve the same problems through the same :class:`~retune.core.solver.Solver`:

* **batched**: :class:`~retune.engines.inference.ModelPolicy` (all pending contexts of a round in
  micro-batches, finished rows dropped, context cache, key/value states of called contexts kept until they
  resume);
* **one-sequence** (the authors' approach): :class:`~retune.engines.inference.GeneratePolicy`, one
  ``model.generate`` per segment at batch 1, each context encoded from scratch, nothing cached;
* **one-sequence, our loop**: ``ModelPolicy(batch_size=1)`` with caching and reuse off, to separate what
  batching gains from what the decoding loop gains.

An untrained model writes garbage and its recursion ends at the first segment, so by default the model's
tokens are *forced* to the reference segments (the forward passes are the real model's, at its real size;
only the argmax is replaced). Both engines then do exactly the work a perfectly trained model causes, and
must produce identical, correct solutions (checked). With ``--run DIR`` the run's model decodes freely
and the engines must still agree problem by problem.

Engines are single-threaded (``--threads 1``) and timed in CPU seconds of the process (``time.process_time``)
as well as wall seconds: on a shared machine a busy neighbour stretches wall time by whatever it takes, CPU
time much less; ``speedup`` compares problems per CPU second, ``speedup_wall`` problems per wall second.
The one-sequence engines are timed on a subset (``--baseline-problems``): they handle one problem after
another, so problems per second do not depend on how many there are. Every engine runs ``--repeats`` times
(alternating with the others, each time with a fresh policy and nothing cached) and its run with the least CPU
time counts: on a shared machine the others mostly measure the neighbours. Prints a table to stderr and ends with
one JSON line holding ``speedup`` (the geometric mean over the tasks of batched problems per CPU second over
one-sequence problems per CPU second), ``speedup_wall`` and the per-task figures, the fraction of wall time
inside the model's forward among them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retune.core.data import generate_problems  # noqa: E402
from retune.core.oracle import OraclePolicy  # noqa: E402
from retune.core.solver import Solver  # noqa: E402
from retune.engines.inference import GeneratePolicy, ModelPolicy, load_model  # noqa: E402
from retune.plugins import get_registry  # noqa: E402


class ForwardTimer:
    """Wall time spent inside ``model.forward`` (hooks, so every engine is measured the same way)."""

    def __init__(self, model):
        self.seconds = 0.0
        self.calls = 0
        self._start = None
        self._handles = [
            model.register_forward_pre_hook(self._pre),
            model.register_forward_hook(self._post),
        ]

    def _pre(self, *args):
        self._start = time.perf_counter()

    def _post(self, *args):
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def close(self):
        for handle in self._handles:
            handle.remove()


class Script:
    """The reference token ids of every context's segment (what a perfectly trained model writes)."""

    def __init__(self, task, tokenizer):
        self.oracle = OraclePolicy(task)
        self.tokenizer = tokenizer
        self.ids: dict[str, list[int]] = {}

    def __call__(self, context: str) -> list[int]:
        if context not in self.ids:
            segment = self.oracle([context])[0]
            self.ids[context] = self.tokenizer(segment, add_special_tokens=False)["input_ids"]
        return self.ids[context]


class ForcedModelPolicy(ModelPolicy):
    def __init__(self, *args, script: Script, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = script

    def _next_tokens(self, logits, rows, produced):
        logits.argmax(-1)  # the work a free policy does
        out = []
        for r in rows:
            ids, k = self.script(self._rows[r]), len(produced[r])
            out.append(ids[k] if k < len(ids) else self.eos_ids[0])
        return torch.tensor(out, device=logits.device)


class ForcedGeneratePolicy(GeneratePolicy):
    def __init__(self, *args, script: Script, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = script

    def _generate_kwargs(self, context, prompt_length):
        from transformers import LogitsProcessor, LogitsProcessorList

        ids, eos = self.script(context), self.eos_ids[0]

        class Force(LogitsProcessor):
            def __call__(self, input_ids, scores):
                k = input_ids.shape[1] - prompt_length
                forced = torch.full_like(scores, float("-inf"))
                forced[:, ids[k] if k < len(ids) else eos] = 0.0
                return forced

        return {"logits_processor": LogitsProcessorList([Force()])}


def run_engine(name, policy, task, problems, model):
    timer = ForwardTimer(model)
    start, cpu_start = time.perf_counter(), time.process_time()
    solutions = Solver(policy, None).solve(task, problems)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    timer.close()
    # ModelPolicy may run a lean copy of the forward that the hooks do not see: it times its own forward calls
    stats = getattr(policy, "stats", None)
    forward = stats.forward_seconds if stats is not None and stats.forward_calls else timer.seconds
    calls = stats.forward_calls if stats is not None and stats.forward_calls else timer.calls
    segments = sum(s.segments for s in solutions)
    return solutions, {
        "engine": name,
        "problems": len(problems),
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "problems_per_s": round(len(problems) / wall, 4),
        "problems_per_cpu_s": round(len(problems) / cpu, 4),
        "segments_per_s": round(segments / wall, 2),
        "forward_calls": calls,
        "forward_fraction": round(forward / wall, 4),
        "correct": sum(s.correct for s in solutions),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="trained run (or model) directory; default: forced reference tokens")
    parser.add_argument("--tasks", default="addition:20,parity:40", help="TASK:LENGTH,... (default %(default)s)")
    parser.add_argument("--problems", type=int, default=64)
    parser.add_argument("--baseline-problems", type=int, default=4, help="problems for the one-sequence engines")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: same for all engines)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-loop-baseline", action="store_true", help="skip the one-sequence run of our loop")
    parser.add_argument("--repeats", type=int, default=2, help="runs of every engine, alternating; the fastest counts")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    registry = get_registry()
    if args.run:
        model, tokenizer = load_model(args.run)
    else:
        from retune.models import build_default_model

        torch.manual_seed(args.seed)
        # Sequential position ids, so that generate() can run the model too: forced tokens make the work the
        # same whatever the scheme (a position id is only a number given to the rotary embedding).
        model, tokenizer = build_default_model(retune_position_scheme="sequential")
        model.eval()
    model.set_attn_implementation("eager")
    mode = "trained" if args.run else "forced"
    scheme = batched_scheme(model)
    generate_ok = scheme == "sequential"  # generate() numbers positions 0, 1, 2, ... itself
    if not generate_ok:
        print(f"the model uses {scheme} position ids, which generate() cannot give it: the one-sequence "
              "reference is our loop at batch 1", file=sys.stderr)
    report = {"mode": mode, "run": args.run, "position_scheme": scheme, "threads": args.threads, "batch_size": args.batch_size,
              "parameters": sum(p.numel() for p in model.parameters()), "tasks": {}}
    for spec in args.tasks.split(","):
        name, length = spec.split(":")
        task = registry.get(name)
        problems = [p for _, p in generate_problems(task, [int(length)], args.problems, args.seed + 1_000_003)]
        subset = problems[: args.baseline_problems]
        script = Script(task, tokenizer)
        for p in problems:  # the reference segments, tokenized before any timing
            for node_context in _contexts(task, p):
                script(node_context)
        budget = 2 * max(len(ids) for ids in script.ids.values()) + 16
        if mode == "forced":
            factories = {
                "batched": lambda: ForcedModelPolicy(model, tokenizer, batch_size=args.batch_size,
                                                     max_new_tokens=budget, script=script),
                "one_sequence_generate": lambda: ForcedGeneratePolicy(model, tokenizer, max_new_tokens=budget,
                                                                      script=script),
                "one_sequence_loop": lambda: ForcedModelPolicy(model, tokenizer, batch_size=1, max_new_tokens=budget,
                                                               cache_size=0, reuse_prefix=False, script=script),
            }
        else:
            factories = {
                "batched": lambda: ModelPolicy(model, tokenizer, batch_size=args.batch_size, max_new_tokens=budget),
                "one_sequence_generate": lambda: GeneratePolicy(model, tokenizer, max_new_tokens=budget),
                "one_sequence_loop": lambda: ModelPolicy(model, tokenizer, batch_size=1, max_new_tokens=budget,
                                                         cache_size=0, reuse_prefix=False),
            }
        engines = ["batched"] + (["one_sequence_generate"] if generate_ok else [])
        if not args.skip_loop_baseline or not generate_ok:
            engines.append("one_sequence_loop")
        best: dict[str, dict] = {}
        solutions: dict[str, list] = {}
        for repeat in range(args.repeats):  # engines alternate, so a busy spell of the machine hits them alike
            for engine in engines:
                chosen = problems if engine == "batched" else subset
                print(f"[{name}:{length}] {engine} on {len(chosen)} problems (run {repeat + 1}/{args.repeats}) ...",
                      file=sys.stderr)
                policy = factories[engine]()  # a fresh policy: nothing cached from an earlier run
                sols, res = run_engine(engine, policy, task, chosen, model)
                if engine == "batched":
                    res["policy"] = policy.stats.as_dict()
                res["runs_cpu_seconds"] = best.get(engine, {}).get("runs_cpu_seconds", []) + [res["cpu_seconds"]]
                if engine not in best or res["cpu_seconds"] < best[engine]["cpu_seconds"]:
                    best[engine] = res
                else:
                    best[engine]["runs_cpu_seconds"] = res["runs_cpu_seconds"]
                solutions[engine] = sols
        results = [best[e] for e in engines]
        reference = [a.model_dump() for a in solutions["batched"][: len(subset)]]
        agree = all([b.model_dump() for b in solutions[e]] == reference for e in engines[1:])
        res_b = best["batched"]
        sol_b = solutions["batched"]
        by_engine = {r["engine"]: r for r in results}
        baseline = by_engine.get("one_sequence_generate") or by_engine["one_sequence_loop"]
        entry = {
            "length": int(length),
            "engines": results,
            "speedup": round(res_b["problems_per_cpu_s"] / baseline["problems_per_cpu_s"], 2),
            "speedup_wall": round(res_b["problems_per_s"] / baseline["problems_per_s"], 2),
            "speedup_vs": baseline["engine"],
            "speedup_vs_loop": (round(res_b["problems_per_cpu_s"] / by_engine["one_sequence_loop"]["problems_per_cpu_s"], 2)
                                if "one_sequence_loop" in by_engine else None),
            "engines_agree": agree,
            "mean_segments": round(sum(s.segments for s in sol_b) / len(sol_b), 2),
            "mean_tokens": round(res_b["policy"]["generated_tokens"] / len(sol_b), 1),
        }
        if mode == "forced" and not all(s.correct for s in sol_b):
            raise SystemExit(f"forced run of {name} was not all correct: the benchmark is broken")
        report["tasks"][spec] = entry
        for r in results:
            print(f"  {r['engine']:<22} {r['problems']:>3} problems {r['seconds']:>7.2f} s wall {r['cpu_seconds']:>7.2f} s cpu "
                  f"{r['problems_per_cpu_s']:>7.3f} problems/cpu-s  forward {100 * r['forward_fraction']:.0f}% of wall  "
                  f"correct {r['correct']}", file=sys.stderr)
        print(f"  speedup {entry['speedup']}x over {entry['speedup_vs']} (wall: {entry['speedup_wall']}x; over our loop "
              f"at batch 1: {entry['speedup_vs_loop']}x); engines agree: {agree}", file=sys.stderr)
    for key in ("speedup", "speedup_wall"):
        values = [t[key] for t in report["tasks"].values()]
        report[key] = round(math.exp(sum(map(math.log, values)) / len(values)), 2)
    print(json.dumps(report))
    return report


def batched_scheme(model) -> str:
    from retune.engines.inference.policy import _position_scheme

    return _position_scheme(model.config)


def _contexts(task, problem):
    from retune.core.trace import build_trace, walk

    for node in walk(build_trace(task, problem)):
        for context, _ in node.segments():
            yield context


if __name__ == "__main__":
    main()
