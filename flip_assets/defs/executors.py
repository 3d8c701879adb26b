"""Where a run's steps execute: all in the run's process (a laptop, CI, `dagster dev`), or each
step in a Kubernetes pod of its own (the Helm deployment, FLIP_EXECUTOR=k8s_job).

In Kubernetes, the steps that run torch models go to GPU nodes and are the only ones told to use
CUDA (FLIP_DEVICE is set in their pods alone), so every other step fits on a CPU node.
"""

from __future__ import annotations

import os

from dagster import ExecutorDefinition, in_process_executor

from flip_assets.defs.asset_keys import CAPTION_CLASSIFIER, FACE_DESCRIPTION_TEST, FACE_DETECTIONS, FACE_TEXT_PAIRS

SETTING = "FLIP_EXECUTOR"

# Step keys (the assets' op names) of the torch stages: the detector, the caption classifier's
# training, its test and its scoring of face-text pairs.
GPU_STEPS = (FACE_DETECTIONS, CAPTION_CLASSIFIER, FACE_DESCRIPTION_TEST, FACE_TEXT_PAIRS)

# Labels and taint of GPU nodes as NVIDIA's GPU operator sets them; one GPU per step.
GPU_STEP_K8S_CONFIG = {
    "container_config": {
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
        "env": [{"name": "FLIP_DEVICE", "value": "cuda"}],
    },
    "pod_spec_config": {
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def run_executor() -> ExecutorDefinition:
    kind = os.environ.get(SETTING, "in_process")
    if kind == "in_process":
        return in_process_executor
    if kind == "k8s_job":
        # Installed only where it is used (the image's `deploy` extra).
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(
            {"per_step_k8s_config": {step: GPU_STEP_K8S_CONFIG for step in GPU_STEPS}}, name="k8s_job_executor"
        )
    raise ValueError(f"{SETTING}={kind!r} is not one of in_process, k8s_job")
