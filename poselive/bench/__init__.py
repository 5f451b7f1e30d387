"""`poselive bench`: benchmarks are programs, not tests. Each prints plain-text tables, with its baseline measured
in the same run (the numpy decoder beside the compiled one, the previous pipeline beside the current one, a
local run beside Ray, MediaPipe beside ours).

    network.py   every stage on every backend (preprocess, network, decode), model size, the decoder
    pipeline.py  the live pipeline per stage on real sources (--pipeline), MediaPipe beside it (--mediapipe)
    face.py      one face end to end, the live face stage (--face)
    stream.py    the skeleton stream's cost to the pipeline, with good and misbehaving clients (--stream)
    window.py    the window: time to close while a video plays (--stream's neighbour, --gui)
    cluster.py   batch tracking locally against Ray (--cluster)
    clock.py     timing helpers

Torch is imported by network.py only, when the command runs: `poselive bench` needs poselive[train].
"""
from __future__ import annotations

import os
import platform


def bench_command(args) -> int:
    import torch

    from poselive import codec
    from poselive.bench.network import (available_backends, backend_tables, decode_table, resolve_model,
                                        single_thread_table, stats_table)
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    model, source = resolve_model(args.model)
    backends = available_backends(model, threads)
    repeats = max(1, int(args.repeats))
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"poselive bench: model {model.cfg.name}, {source}")
    print(f"machine: {platform.machine()}, {threads} CPU cores{gpu}; torch {torch.__version__} with {threads} "
          f"threads, ONNX Runtime intra-op threads {threads}; {repeats} timed runs after warm-up; decoder "
          f"{codec.IMPLEMENTATION}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * threads:
        print(f"note: load average {load:.1f} on {threads} cores before starting; other processes share the "
              f"cores, so wall-clock times are inflated")
    print()
    sections = [stats_table(model.cfg), backend_tables(model, backends, repeats),
                single_thread_table(model, repeats), decode_table(repeats, model.cfg.blur_sigma)]
    if args.pipeline:
        from poselive.bench.pipeline import pipeline_section
        sections.append(pipeline_section(args))
    if args.mediapipe:
        from poselive.bench.pipeline import mediapipe_section
        sections.append(mediapipe_section(args))
    if args.face:
        from poselive.bench.face import face_section, live_face_table
        sections.append(face_section(args, repeats))
        sections.append(live_face_table())
    if args.cluster:
        from poselive.bench.cluster import bench_cluster
        sections.append(bench_cluster())
    if args.stream:
        from poselive.bench.stream import bench_stream, bench_table, misbehaving_clients_table
        sections.append(bench_table(bench_stream()))
        sections.append(misbehaving_clients_table())
    if getattr(args, "gui", False):
        from poselive.bench.window import window_table
        sections.append(window_table())
    print("\n\n".join(sections))
    return 0
