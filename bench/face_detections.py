"""Face detection speed and quality.

    python -m bench.face_detections [--repeats 3] [--device cuda] [--no-quality]

On the decoded images of the sample shards, in one run: images/s of the face_detections code
path (padding, forward, decoding, NMS) against the bare model's batched forward on the same
padded batches, their ratio; the whole shard path (JPEG decoding included); YuNet's rate; peak
memory; then recall and precision on 300-W. The pipeline's settings (FLIP_SOURCE, FLIP_MODELS,
FLIP_DEVICE, FLIP_EVAL_DATA, ...) as `make pipeline` reads them. One JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from bench import pipeline_resource
from flip_assets.core.curation.detectors import RetinaFaceDetector, build_detector, pad_batches
from flip_assets.core.evaluation.face_eval import evaluate, load_300w
from flip_assets.core.curation.face_filter import detect_faces_in_shard
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


def main() -> None:
    settings = pipeline_resource("face_detector")
    models = Path(settings.models_dir)
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=settings.batch_size)
    parser.add_argument("--device", default=settings.device)
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=True, help="recall and precision on 300-W")
    args = parser.parse_args()

    source = Path(pipeline_resource("shard_source").directory)
    rows = [r for s in list_shards(source) for r in read_shard(source, s)[0].to_pylist()]
    ok = [r for r in rows if r["status"] == "ok"]
    images = [decode_rgb(read_sample_image(r), settings.max_pixels).rgb for r in ok]
    machine = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": args.device}

    detector = RetinaFaceDetector(models / "retinaface_mobilenet0.25.pth", batch_size=args.batch_size, device=args.device)
    batches = [b for _, b in pad_batches(images, args.batch_size)]

    def bare() -> None:
        for batch in batches:
            detector.forward(batch)
        if detector.device.type == "cuda":
            torch.cuda.synchronize()  # the forward only queues GPU work

    # Interleaved, best of each: a busy machine slows both sides alike.
    pipeline, bare_rate = _rates([lambda: detector.detect(images), bare], len(images), args.repeats)
    print(json.dumps({"bench": "face_detections", "images": len(images), "batch_size": args.batch_size,
                      "pipeline_images_per_s": round(pipeline, 2), "bare_forward_images_per_s": round(bare_rate, 2),
                      "ratio": round(pipeline / bare_rate, 3), **machine}), flush=True)

    shard_rate = _rate(lambda: detect_faces_in_shard(rows, detector, settings.keep_threshold, settings.max_pixels, settings.max_side), len(images), 1)
    print(json.dumps({"bench": "face_detections_shard_path", "images": len(images),
                      "images_per_s_with_jpeg_decoding": round(shard_rate, 2)}), flush=True)

    yunet = build_detector("yunet", models)
    yunet_rate = _rate(lambda: yunet.detect(images), len(images), args.repeats)
    print(json.dumps({"bench": "yunet", "images": len(images), "images_per_s": round(yunet_rate, 2),
                      "vs_retinaface_pipeline": round(yunet_rate / pipeline, 2)}), flush=True)
    print(json.dumps({"bench": "memory", "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}), flush=True)

    if not args.quality:
        return
    confirmer = build_detector("yunet", models, min_score=settings.min_face_score)
    eval_data = Path(pipeline_resource("training").eval_data)
    for name in ("faces_300w_afw", "faces_300w_helen_test"):
        result = evaluate(name, load_300w(eval_data / f"{name}.parquet"), detector, settings.keep_threshold, confirmer)
        print(json.dumps({"bench": "300w_quality", **result.as_dict(),
                          "false_positive_candidates_list": result.fp_candidates}), flush=True)


if __name__ == "__main__":
    main()
