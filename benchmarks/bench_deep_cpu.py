"""Benchmark: the VGG19 trunk on CPU, as the deep stage runs it and with the options issue 18 lists.

Standalone (it does not change ``deep.py``, which is being rewritten for issue 16): the trunk is
torchvision's ``vgg19().features`` with random weights (the same FLOPs as ImageNet weights) on 224 x 224
crops, followed by the 2 x 2 average pooling of ``deep.py``. Variants, each on the same crops:

- ``torch, one crop at a time``: what ``deep.py`` does for features (batch 1, ``torch.inference_mode``).
- ``torch, channels-last``: the same with the model and input in channels-last memory format.
- ``torch, batch 8 (fixed)``: fixed-size batches of 8 (the last one padded with zeros), checked for
  independence of batch mates (each crop's output compared with its batch-1 output and with itself in
  another batch position and other mates).
- ``torch, threads = 1``: one intra-op thread (e.g. the deep stage on one core while the handcrafted
  workers use the other).
- ``ONNX Runtime``: the convolutional trunk exported to ONNX (opset 17), CPU execution provider, batch 1
  (the 7 -> 2 adaptive pooling, which ONNX cannot export, is done by torch after).
- ``OpenVINO``: ``openvino.convert_model`` of the convolutional trunk, CPU plugin, batch 1 (FP32 inference
  precision hint, so it is compared as FP32), pooled by torch after.

For each: seconds per crop (best of ``--repeats`` passes over ``--crops`` crops; wall, and process CPU),
and the largest difference of the pooled outputs from the batch-1 torch output (relative to that
output's largest magnitude).

Usage::

    python benchmarks/bench_deep_cpu.py [--crops 16] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision


def _pool(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


class _Trunk(torch.nn.Module):
    def __init__(self, features: torch.nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pool(self.features(x))


def timed(
    fn: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, repeats: int
) -> tuple[float, float, np.ndarray]:
    """Best wall and CPU seconds per crop over ``repeats`` passes, and the outputs."""
    best_wall = best_cpu = float("inf")
    out = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(crops)
        best_wall = min(best_wall, (time.perf_counter() - wall) / len(crops))
        best_cpu = min(best_cpu, (time.process_time() - cpu) / len(crops))
    assert out is not None
    return best_wall, best_cpu, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], help="variants to leave out (onnx, openvino)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    trunk = _Trunk(torchvision.models.vgg19(weights=None).features).eval()
    rng = np.random.default_rng(0)
    crops = rng.normal(0.0, 1.0, size=(args.crops, 3, 224, 224)).astype(np.float32)
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} threads, python {platform.python_version()}; load average {os.getloadavg()}"
    )

    def per_crop(model: torch.nn.Module, memory_format: torch.memory_format = torch.contiguous_format):
        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.concatenate(
                    [
                        model(torch.from_numpy(x[i : i + 1]).contiguous(memory_format=memory_format)).numpy()
                        for i in range(len(x))
                    ]
                )

        return run

    def batched(size: int) -> Callable[[np.ndarray], np.ndarray]:
        def run(x: np.ndarray) -> np.ndarray:
            out = []
            with torch.inference_mode():
                for start in range(0, len(x), size):
                    part = x[start : start + size]
                    padded = np.zeros((size, *x.shape[1:]), dtype=np.float32)
                    padded[: len(part)] = part
                    out.append(trunk(torch.from_numpy(padded)).numpy()[: len(part)])
            return np.concatenate(out)

        return run

    results: list[tuple[str, float, float, float]] = []
    reference: np.ndarray | None = None

    def record(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        nonlocal reference
        fn(crops[:1])  # warm-up (kernel selection, lazy initialisation)
        wall, cpu, out = timed(fn, crops, args.repeats)
        if reference is None:
            reference = out
        diff = float(np.abs(out - reference).max() / np.abs(reference).max())
        results.append((name, wall, cpu, diff))
        print(f"{name}: {wall:.3f} s/crop wall, {cpu:.3f} CPU-s/crop, max rel. diff {diff:.1e}", flush=True)
        return out

    record("torch, one crop at a time (deep.py today)", per_crop(trunk))
    channels_last = _Trunk(torchvision.models.vgg19(weights=None).features).eval()
    channels_last.load_state_dict(trunk.state_dict())
    channels_last = channels_last.to(memory_format=torch.channels_last)
    record("torch, channels-last, one crop at a time", per_crop(channels_last, torch.channels_last))
    out8 = record("torch, fixed batches of 8", batched(8))
    # independence of batch mates: crop 0 among other mates and in another position of a batch of 8
    mates = rng.normal(0.0, 1.0, size=(8, 3, 224, 224)).astype(np.float32)
    mates[5] = crops[0]
    with torch.inference_mode():
        moved = trunk(torch.from_numpy(np.ascontiguousarray(mates))).numpy()[5]
    same = bool(np.array_equal(moved, out8[0]))
    print(
        f"fixed batches of 8: crop 0 in position 5 with other mates is bit-identical to position 0: {same}; "
        f"vs batch 1: max rel. diff {float(np.abs(out8[0] - reference[0]).max() / np.abs(reference[0]).max()):.1e}"
    )
    torch.set_num_threads(1)
    record("torch, 1 thread, one crop at a time", per_crop(trunk))
    torch.set_num_threads(args.threads)

    if "onnx" not in args.skip:
        try:
            import onnxruntime as ort
        except ImportError:
            print("onnxruntime not installed: skipped")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "trunk.onnx"
                # the convolutional part (adaptive 7 -> 2 pooling has no ONNX export): pooled by torch after
                torch.onnx.export(
                    trunk.features,
                    (torch.from_numpy(crops[:1]),),
                    str(path),
                    opset_version=17,
                    input_names=["x"],
                    output_names=["y"],
                    dynamo=False,
                )
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

                def onnx_run(x: np.ndarray) -> np.ndarray:
                    return np.concatenate(
                        [
                            _pool(torch.from_numpy(session.run(None, {"x": x[i : i + 1]})[0])).numpy()
                            for i in range(len(x))
                        ]
                    )

                record(f"ONNX Runtime {ort.__version__}, one crop at a time", onnx_run)
    if "openvino" not in args.skip:
        try:
            import openvino as ov
        except ImportError:
            print("openvino not installed: skipped")
        else:
            core = ov.Core()
            model = ov.convert_model(trunk.features, example_input=torch.from_numpy(crops[:1]))
            compiled = core.compile_model(
                model, "CPU", {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32"}
            )
            request = compiled.create_infer_request()

            def ov_run(x: np.ndarray) -> np.ndarray:
                return np.concatenate(
                    [
                        _pool(torch.from_numpy(request.infer({0: x[i : i + 1]})[0].copy())).numpy()
                        for i in range(len(x))
                    ]
                )

            record(f"OpenVINO {ov.__version__}, one crop at a time", ov_run)
    base = results[0][1]
    print(
        f"\n{args.crops} crops of 224 x 224, best of {args.repeats}; load average after {os.getloadavg()}\n"
    )
    print("| variant | s/crop (wall) | CPU-s/crop | vs today (wall) | max rel. difference |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, cpu, diff in results:
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {base / wall:.2f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
