"""The detector on a shared machine (issue 23, item 5): one torch thread by default, OpenMP
threads that sleep rather than spin, since backfill workers share their cores (bench/README.md,
"Face detection under load": 2 spinning threads on 2 busy cores ran 4-5x slower), and batches
ordered so the heap stops growing with each new shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
from conftest import MODELS, REPO_ROOT

from flip_assets.core.curation.detectors import build_detector, pad_batches


def test_a_retinaface_detector_runs_torch_on_one_thread_unless_told_otherwise_and_leaves_the_process_its_own():
    """Inside detect() torch runs on FLIP_DETECTOR_THREADS threads; after it, the process has the
    threads it had (make pipeline runs the classifier and training in the same process)."""
    torch.set_num_threads(2)  # what torch picks on a 2-core machine
    image = np.zeros((64, 64, 3), np.uint8)
    for threads, wanted in ((None, 1), (2, 2)):
        detector = build_detector("retinaface", MODELS, **({"threads": threads} if threads else {}))
        seen = []
        detector.model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
        detector.detect([image])
        assert seen == [wanted] and torch.get_num_threads() == 2


def test_torch_loads_with_a_passive_openmp_wait_policy_when_a_resource_checks_its_device():
    # A fresh interpreter: libgomp reads the policy once, when torch loads. The hook records the
    # policy at that moment; resources check their device (torch_device) before any detector.
    code = (
        "import json, os, sys\n"
        "seen = []\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' and not seen: seen.append(os.environ.get('OMP_WAIT_POLICY'))\n"
        "sys.meta_path.insert(0, Hook())\n"
        "from flip_assets.core.io.devices import torch_device\n"
        "torch_device('cpu')\n"
        "print(json.dumps(seen))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == ["PASSIVE"]
    # A value the user set wins.
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == ["ACTIVE"]


def test_batches_come_largest_shape_first():
    # Freed buffers of a larger shape hold every later, smaller one: glibc's heap then stops
    # growing with each new shape (bench/README.md, peak memory).
    rng = np.random.default_rng(0)
    sizes = [(100, 90), (640, 480), (300, 500), (640, 640), (64, 64), (480, 640)]
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    areas = [batch.shape[2] * batch.shape[3] for _, batch in pad_batches(images, 8)]
    assert areas == sorted(areas, reverse=True) and len(areas) == len(sizes)
