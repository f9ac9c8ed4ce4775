r"""PyTorch baselines for the step-time benchmark: plain BP and an explicit, batched DFA.

Same net as ``step_time.py`` (``in -> width``, ``depth - 1`` times ``width -> width``, ``width ->
out``; tanh; softmax cross-entropy, batch mean; plain SGD) and the same JSON-lines format, with
rule names:

* ``torch_forward``: the forward pass only, under ``torch.no_grad`` (PyTorch's floor).
* ``torch_bp``: plain PyTorch -- ``nn.Linear`` + ``nn.Tanh`` layers, ``F.cross_entropy``,
  ``loss.backward()``, ``torch.optim.SGD``.
* ``torch_dfa``: DFA written out, no autograd at all (``torch.no_grad``): the forward pass keeps
  every ``h_i`` in one preallocated ``(depth, B, width)`` buffer; ``e = softmax(a_y) - onehot(y)``
  (over ``B``); the deltas of ALL hidden layers come from ONE batched matmul of ``e`` against the
  stacked feedback ``(depth, out, width)``, times ``f'(a) = 1 - h^2``; the hidden weight gradients
  of all layers from ONE ``torch.bmm``; then SGD in place.
* ``torch_wgrad``: that one ``torch.bmm`` alone -- PyTorch's side of DFA's floor, to compare with
  jdfa's contraction alone (``--jdfa-rules wgrad``).

With ``--jdfa-rules``, jdfa's steps are timed in the same rounds, and each learning rule is then
also trained through the public entry point, `jdfa.train` (``--train-steps`` steps on the timed
batch, evaluations at step 0 and at the end only, on that batch: a record of ``"kind": "train"``
with ``train_steps_per_s``, ``train_ms_per_step``, the bare step's ``bare_ms_median`` and their
``ratio``), so that the numbers beside PyTorch's are also those a user of ``jdfa train`` gets.

PyTorch is a benchmark-only extra: ``pip install torch`` (PyPI's Linux wheel brings the CUDA
libraries with it; it runs on the CPU all the same). ``compile_s``, ``lower_s`` and the
XLA memory fields are null (eager PyTorch compiles nothing).

Example::

    python benchmarks/torch_baseline.py --depth 100 --width 200 --batch 128 --malloc tuned \
        --out benchmarks/results/cpu/torch.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time

import common  # this folder is on sys.path when the script runs (tests add it to import it)

RULES = ("torch_forward", "torch_bp", "torch_dfa", "torch_wgrad")
INSTALL_HINT = ("PyTorch is not installed. It is a benchmark-only extra; install it with:\n"
                "    pip install torch")


def _import_torch():
    try:
        import torch
    except ImportError:
        common.log(INSTALL_HINT)
        sys.exit(2)
    return torch


class TorchBP:
    """Plain PyTorch: autograd through nn.Linear/nn.Tanh, F.cross_entropy, optim.SGD."""

    def __init__(self, torch, in_features, width, depth, out_features, lr, device="cpu"):
        nn = torch.nn
        layers = [nn.Linear(in_features, width), nn.Tanh()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.Tanh()]
        layers.append(nn.Linear(width, out_features))
        self.torch = torch
        self.model = nn.Sequential(*layers).to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)

    def step(self, x, y):
        f = self.torch.nn.functional
        self.opt.zero_grad(set_to_none=True)
        loss = f.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        return loss

    def forward(self, x, y):
        with self.torch.no_grad():
            return self.model(x)


class TorchDFA:
    """Explicit DFA: no autograd, all deltas from one batched matmul, all hidden weight
    gradients from one bmm, SGD in place. Weights in the row convention, ``a = h @ W + b``."""

    def __init__(self, torch, in_features, width, depth, out_features, lr, batch, generator=None,
                 device="cpu"):
        self.torch, self.lr, self.depth = torch, lr, depth

        def uniform(shape, fan):  # drawn on the CPU generator, so every device gets the same net
            lim = 1.0 / fan ** 0.5
            return ((torch.rand(shape, generator=generator) * 2 - 1) * lim).to(device)

        self.w_in = uniform((in_features, width), in_features)
        self.b_in = torch.zeros(width, device=device)
        self.w_h = uniform((depth - 1, width, width), width)
        self.b_h = torch.zeros(depth - 1, width, device=device)
        self.w_out = uniform((width, out_features), width)
        self.b_out = torch.zeros(out_features, device=device)
        # Feedback B_i^T stacked: (depth, out, width); delta_i = (e @ B_i^T) * f'(a_i).
        self.bt = uniform((depth, out_features, width), out_features)

        def empty(*shape):
            return torch.empty(*shape, device=device)

        self.h = empty(depth, batch, width)  # h_1 .. h_depth
        self.fprime = empty(depth, batch, width)
        self.deltas = empty(depth, batch, width)
        self.g_h = empty(depth - 1, width, width)

    def forward(self, x, y=None):
        t, h = self.torch, self.h
        with t.no_grad():
            t.addmm(self.b_in, x, self.w_in, out=h[0])
            h[0].tanh_()
            for i in range(1, self.depth):
                t.addmm(self.b_h[i - 1], h[i - 1], self.w_h[i - 1], out=h[i])
                h[i].tanh_()
            return t.addmm(self.b_out, h[-1], self.w_out)

    def grads(self, x, y):
        """``(loss, grads)`` with grads ``(w_in, b_in, w_h, b_h, w_out, b_out)`` (buffers reused)."""
        t = self.torch
        with t.no_grad():
            a_y = self.forward(x)
            batch = x.shape[0]
            logp = t.log_softmax(a_y, dim=1)
            loss = -logp.gather(1, y[:, None]).mean()
            e = logp.exp_()
            e[t.arange(batch), y] -= 1.0
            e /= batch  # dLoss/da_y of the batch-mean loss
            h, d = self.h, self.deltas
            t.matmul(e, self.bt, out=d)  # (depth, batch, out) @ (depth, out, width): ONE batched matmul
            t.mul(h, h, out=self.fprime)  # f'(a) = 1 - tanh(a)^2 = 1 - h^2
            self.fprime.neg_().add_(1.0)
            d.mul_(self.fprime)
            self.wgrad()
            return loss, (x.T @ d[0], d[0].sum(0), self.g_h, d[1:].sum(1), h[-1].T @ e, e.sum(0))

    def wgrad(self):
        """ALL hidden weight gradients from the stored ``h`` and deltas: ONE bmm."""
        h, d = self.h, self.deltas
        return self.torch.bmm(h[:-1].transpose(1, 2), d[1:], out=self.g_h)

    def step(self, x, y):
        with self.torch.no_grad():
            loss, g = self.grads(x, y)
            for p, gp in zip((self.w_in, self.b_in, self.w_h, self.b_h, self.w_out, self.b_out), g):
                p.add_(gp, alpha=-self.lr)
        return loss


def run_config(torch, depth, width, batch, args, env, emit):
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(batch, args.in_features, generator=gen).to(args.device)
    y = torch.randint(0, args.out_features, (batch,), generator=gen).to(args.device)
    net_args = (torch, args.in_features, width, depth, args.out_features, args.lr)
    bp, dfa = TorchBP(*net_args, device=args.device), TorchDFA(*net_args, batch, gen, device=args.device)
    dfa.grads(x, y)  # fills the buffers torch_wgrad's bmm reads
    fns = {"torch_forward": TorchBP(*net_args, device=args.device).forward, "torch_bp": bp.step,
           "torch_dfa": dfa.step, "torch_wgrad": lambda _x, _y: dfa.wgrad()}
    # CUDA kernels run asynchronously: a step's time ends when the device is done with it.
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    runs = []
    for rule in common.str_list(args.rules):
        if rule not in fns:
            raise SystemExit(f"unknown rule {rule!r}; expected some of {', '.join(RULES)}")
        runs.append((rule, fns[rule], []))
    torch_opt_label = f"sgd(lr={args.lr:g})"  # torch.optim.SGD, labelled as step_time.py labels jdfa's
    jdfa_benches = {}
    if args.jdfa_rules:  # jdfa's compiled steps, timed in the same rounds: fair cross-framework ratios
        import jax
        import jax.numpy as jnp
        import step_time

        import jdfa

        net = jdfa.MLP(args.in_features, width, depth, args.out_features)
        xj, yj = jnp.asarray(x.cpu().numpy()), jnp.asarray(y.cpu().numpy().astype("int32"))
        opt = jdfa.Optimizer("sgd", args.lr)
        optimizer, jdfa_opt_label = opt.build(1), step_time.optimizer_label(opt)
        for spec in common.str_list(args.jdfa_rules):
            spec, rule = step_time.parse_rule(spec)
            b = step_time.Bench(spec, rule, net, batch, optimizer, jax.random.key(args.seed), xj, yj)
            jdfa_benches[spec] = b
            runs.append((spec, lambda _x, _y, b=b: b.step(), []))
    if args.wait_quiet > 0:
        common.wait_for_quiet(args.wait_quiet)
    load = common.ForeignLoad()
    for _, fn, _ in runs:
        for _ in range(args.warmup):
            fn(x, y)
        sync()
    chunks = common.interleaved_rounds(args.steps, args.rounds)
    for r, chunk in enumerate(chunks):
        order = runs[r % len(runs):] + runs[:r % len(runs)]
        for _, fn, times in order:
            for _ in range(chunk):
                t0 = time.perf_counter()
                fn(x, y)
                sync()
                times.append(time.perf_counter() - t0)
    other_load = load.cores()
    reprs = {"torch_forward": "PyTorch forward (nn.Sequential under no_grad)",
             "torch_bp": "PyTorch BP (autograd, optim.SGD)",
             "torch_dfa": "PyTorch explicit DFA (no_grad, batched matmul deltas, one bmm)",
             "torch_wgrad": "PyTorch's DFA weight-gradient contraction alone (the one bmm)"}
    for rule, _, times in runs:
        if rule in jdfa_benches:
            b = jdfa_benches[rule]
            rec = {"kind": "step", "rule": rule,
                   "rule_repr": f"jdfa {b.description}, timed beside the PyTorch runs",
                   "depth": depth, "width": width, "batch": batch,
                   "in_features": args.in_features, "out_features": args.out_features,
                   "activation": "tanh", "optimizer": None if b.rule is None else jdfa_opt_label,
                   **env, "jax_version": jax.__version__, "lower_s": b.lower_s,
                   "compile_s": b.compile_s,
                   **common.timing_fields(times, batch), **b.memory, "other_load_cores": other_load}
            emit(rec)
            common.log(f"  d={depth} w={width} b={batch} {rule:<14} median "
                       f"{rec['step_ms_median']:8.3f} ms  [{rec['step_ms_min']:.3f}, "
                       f"{rec['step_ms_max']:.3f}]  (jdfa)")
            if b.rule is not None and args.train_steps:
                emit(train_record(rec, env, b, net, opt, (xj, yj), args.train_steps))
            continue
        rec = {
            "kind": "step", "rule": rule, "rule_repr": reprs[rule],
            "depth": depth, "width": width, "batch": batch,
            "in_features": args.in_features, "out_features": args.out_features,
            "activation": "tanh",
            "optimizer": None if rule in ("torch_forward", "torch_wgrad") else torch_opt_label,
            **env,
            "lower_s": None, "compile_s": None,
            **common.timing_fields(times, batch),
            "temp_bytes": None, "argument_bytes": None, "output_bytes": None, "alias_bytes": None,
            "generated_code_bytes": None,
            "other_load_cores": other_load,
        }
        emit(rec)
        common.log(f"  d={depth} w={width} b={batch} {rule:<14} median {rec['step_ms_median']:8.3f} ms"
                   f"  [{rec['step_ms_min']:.3f}, {rec['step_ms_max']:.3f}]")


def train_record(step_rec: dict, env: dict, bench, net, opt, batch_xy, steps: int) -> dict:
    """`jdfa.train` of the bench's rule for ``steps`` steps on the one timed batch (train and test
    set alike), beside its bare step ``step_rec``."""
    import numpy as np

    data = tuple((np.asarray(batch_xy[0]), np.asarray(batch_xy[1])) for _ in range(2))
    load = common.ForeignLoad()
    timed = common.time_train(net, bench.rule, opt, step_rec["batch"], steps, data)
    keep = ("depth", "width", "batch", "in_features", "out_features", "activation", "optimizer")
    rec = {"kind": "train", "rule": step_rec["rule"],
           "rule_repr": f"jdfa.train of {bench.description} (the public entry point)",
           **{k: step_rec[k] for k in keep}, **env, "jax_version": step_rec["jax_version"],
           **timed, "bare_ms_median": step_rec["step_ms_median"],
           "ratio": timed["train_ms_per_step"] / step_rec["step_ms_median"],
           "other_load_cores": load.cores()}
    common.log(f"  d={rec['depth']} w={rec['width']} b={rec['batch']} {rec['rule']:<14} jdfa.train "
               f"{rec['train_steps_per_s']:.1f} steps/s = {rec['train_ms_per_step']:.3f} ms/step over "
               f"{steps} steps ({rec['ratio']:.2f}x the bare step)")
    return rec


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rules", default=",".join(RULES))
    p.add_argument("--depths", "--depth", dest="depths", default="100")
    p.add_argument("--widths", "--width", dest="widths", default="200")
    p.add_argument("--batches", "--batch", dest="batches", default="128")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--in-features", type=int, default=784)
    p.add_argument("--out-features", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: core count)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where PyTorch runs; jdfa's rules run on JAX's default device")
    common.add_malloc_flag(p)
    p.add_argument("--jdfa-rules", default="", help="step_time.py rule specs (e.g. forward,dfa) "
                   "to time interleaved with the PyTorch runs, in this process, for fair ratios")
    p.add_argument("--train-steps", type=int, default=300,
                   help="steps of the jdfa.train run of each --jdfa-rules learning rule (0: none)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--out", default=None)
    p.add_argument("--append", action="store_true")
    args = p.parse_args(argv)
    common.apply_malloc(args.malloc)
    torch = _import_torch()
    threads = args.threads or common.cpu_count()
    torch.set_num_threads(threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this PyTorch build sees no CUDA device")
    env = {
        "device_kind": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "platform": "gpu" if args.device == "cuda" else "cpu", "jax_version": None,
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cpu_model": common.cpu_model(), "cpu_count": common.cpu_count(),
        **common.jdfa_revision(),
        "malloc": common.malloc_setting(), "xla_flags": None,
    }
    emitter = common.Emitter(args.out, append=args.append)
    try:
        for width in common.int_list(args.widths):
            for batch in common.int_list(args.batches):
                for depth in common.int_list(args.depths):
                    run_config(torch, depth, width, batch, args, env, emitter.emit)
    finally:
        emitter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
