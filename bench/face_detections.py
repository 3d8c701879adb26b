"""Face detection speed and quality.

    python -m bench.face_detections [--repeats 3] [--device cuda] [--no-quality] [--burners N]

On the decoded images of the sample shards, in one run: images/s of the face_detections code
path (padding, forward, decoding, NMS) against the bare model's batched forward on the same
padded batches, their ratio; the whole shard path (JPEG decoding included); YuNet's rate; peak
memory; then recall and precision on 300-W. The pipeline's settings (FLIP_SOURCE, FLIP_MODELS,
FLIP_DEVICE, FLIP_EVAL_DATA, ...) as `make pipeline` reads them. One JSON object per line.

--burners N runs N processes spinning pure-Python CPU work for the whole measurement (started
before, stopped after): the controlled background load of a shared worker machine. Every line
carries the burner count and the 1-minute load average at the time it was printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench import pipeline_resource
from flip_assets.core.curation.detectors import RetinaFaceDetector, build_detector, pad_batches
from flip_assets.core.io.devices import load_torch
from flip_assets.core.evaluation.face_eval import evaluate, load_300w
from flip_assets.core.curation.face_filter import DECODE_THREADS, detect_faces_in_shard
from flip_assets.core.io.images import decode_rgb
from flip_assets.core.io.shards import list_shards, read_sample_image, read_shard


def _rates(fns, n_images: int, repeats: int) -> list[float]:
    """Images/s of each function, best of `repeats`, the functions taking turns."""
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn()  # warm-up: allocator, anchor cache, one-off kernels
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return [n_images / b for b in best]


def _rate(fn, n_images: int, repeats: int) -> float:
    return _rates([fn], n_images, repeats)[0]


@contextlib.contextmanager
def burners(count: int):
    """`count` child processes each keeping one core busy with pure-Python work until the block ends."""
    # Each stops by itself once this process is gone, should it die before the block ends.
    spin = f"import os\nwhile os.getppid() == {os.getpid()}: sum(i * i for i in range(10_000))"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _emit(line: dict, load: dict) -> None:
    print(json.dumps({**line, **load, "load_avg_1m": round(os.getloadavg()[0], 2)}), flush=True)


def detection_path_peak_rss(settings, threads: int, source: Path, eval_data: Path) -> float:
    """Peak RSS (MiB) of a process that runs only the detection path: every shard through
    detect_faces_in_shard, then 300-W Helen's images through the detector, as the pipeline and
    the evaluation hold them. The benchmark's own copies of images and batches are not counted."""
    detector = build_detector("retinaface", Path(settings.models_dir), settings.batch_size, settings.min_face_score, settings.device, threads)
    for shard in list_shards(source):
        detect_faces_in_shard(read_shard(source, shard)[0].to_pylist(), detector, settings.keep_threshold, settings.max_pixels, settings.max_side)
    helen = [decode_rgb(img, settings.max_pixels).rgb for _, img, _ in load_300w(eval_data / "faces_300w_helen_test.parquet")]
    detector.detect(helen)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    settings = pipeline_resource("face_detector")
    models = Path(settings.models_dir)
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=settings.batch_size)
    parser.add_argument("--device", default=settings.device)
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True, help="recall and precision on 300-W")
    parser.add_argument("--threads", type=int, default=settings.threads, help="torch threads of the detector")
    parser.add_argument("--burners", type=int, default=0, help="background processes keeping a core busy each")
    parser.add_argument("--detection-path-memory", action="store_true", help=argparse.SUPPRESS)  # the child measuring memory
    args = parser.parse_args()

    source = Path(pipeline_resource("shard_source").directory)
    eval_data = Path(pipeline_resource("training").eval_data)
    if args.detection_path_memory:
        print(round(detection_path_peak_rss(settings, args.threads, source, eval_data), 1))
        return
    load = {"burners": args.burners}
    with burners(args.burners):
        _measure(args, settings, models, source, eval_data, load)


def _measure(args, settings, models: Path, source: Path, eval_data: Path, load: dict) -> None:
    rows = [r for s in list_shards(source) for r in read_shard(source, s)[0].to_pylist()]
    ok = [r for r in rows if r["status"] == "ok"]
    images = [decode_rgb(read_sample_image(r), settings.max_pixels).rgb for r in ok]
    detector = RetinaFaceDetector(models / "retinaface_mobilenet0.25.pth", batch_size=args.batch_size, threads=args.threads, device=args.device)
    torch = load_torch()
    # The process's own pool at the detector's threads: the bare forward runs as detect() does,
    # and neither re-sizes the pool each batch.
    torch.set_num_threads(args.threads)
    machine = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": args.device,
               "omp_wait_policy": detector.omp_wait_policy}
    batches = [b for _, b in pad_batches(images, args.batch_size)]

    def bare() -> None:
        for batch in batches:
            detector.forward(batch)
        if detector.device.type == "cuda":
            torch.cuda.synchronize()  # the forward only queues GPU work

    # Interleaved, best of each: a busy machine slows both sides alike.
    pipeline, bare_rate = _rates([lambda: detector.detect(images), bare], len(images), args.repeats)
    _emit({"bench": "face_detections", "images": len(images), "batch_size": args.batch_size,
           "pipeline_images_per_s": round(pipeline, 2), "bare_forward_images_per_s": round(bare_rate, 2),
           "ratio": round(pipeline / bare_rate, 3), **machine}, load)
    del batches

    def shard_path(threads: int):
        return lambda: detect_faces_in_shard(rows, detector, settings.keep_threshold, settings.max_pixels, settings.max_side, decode_threads=threads)

    # JPEG decoding in the calling thread (as before issue 23), then in the pipeline's pool, taking turns.
    serial, threaded = _rates([shard_path(0), shard_path(DECODE_THREADS)], len(images), args.repeats)
    _emit({"bench": "face_detections_shard_path", "images": len(images),
           "images_per_s_with_jpeg_decoding": round(threaded, 2), "decode_threads": DECODE_THREADS,
           "images_per_s_decoding_serially": round(serial, 2)}, load)

    yunet = build_detector("yunet", models)
    yunet_rate = _rate(lambda: yunet.detect(images), len(images), args.repeats)
    _emit({"bench": "yunet", "images": len(images), "images_per_s": round(yunet_rate, 2),
           "vs_retinaface_pipeline": round(yunet_rate / pipeline, 2)}, load)
    child = subprocess.run([sys.executable, "-m", "bench.face_detections", "--detection-path-memory", "--threads", str(args.threads)],
                           check=True, capture_output=True, text=True)
    _emit({"bench": "memory", "detection_path_peak_rss_mib": float(child.stdout.split()[-1]),
           "benchmark_process_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}, load)

    if not args.quality:
        return
    confirmer = build_detector("yunet", models, min_score=settings.min_face_score)
    for name in ("faces_300w_afw", "faces_300w_helen_test"):
        result = evaluate(name, load_300w(eval_data / f"{name}.parquet"), detector, settings.keep_threshold, confirmer)
        _emit({"bench": "300w_quality", **result.as_dict(),
               "false_positive_candidates_list": result.fp_candidates}, load)


if __name__ == "__main__":
    main()
