"""The paper's downstream evaluations (section 4.2) on the shared evaluation files, for any
dual encoder of dual_encoder.py:

- zero-shot with the paper's templates: CelebA's 40 attributes ("a photo of a face with /
  without {attribute}", the closer prompt wins), FER2013 expressions ("a photo of a face with
  {label} expression", 7 classes; stands in for RAF-DB, AffectNet, ExpW);
- linear probe, as CLIP does it: logistic regression on frozen image embeddings, trained on the
  train split and scored on the test split, for UTKFace race, gender and age group (FairFace's
  nine groups; UTKFace stands in for FairFace) and FER2013;
- face alignment: a linear landmark head (ridge regression to the 68 points) on frozen image
  embeddings of 300-W face crops, trained on 1 %, 10 % and 100 % of a train split, NME
  normalised by the inter-ocular distance (outer eye corners, points 36 and 45) on the rest.
  300-W split: the AFW and Helen-test faces together, grouped by picture (`image_id`), a
  picture in the test part when int(sha256(image_id), 16) % 3 == 0 (about a third).

Only test splits are scored: CelebA `split == "test"`, FER2013 PublicTest + PrivateTest,
UTKFace `split == "test"`, the 300-W test part; train splits only fit probes and heads.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flip_assets.core.training.training_pairs import ATTRIBUTE_PHRASES, attribute_names, present, sha256

FER_WORDS = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy", "neutral": "neutral", "sad": "sad", "surprise": "surprised"}  # fmt: skip
FER_TEST_USAGES = ("PublicTest", "PrivateTest")
UTK_RACES = ("White", "Black", "Asian", "Indian", "Others")
AGE_GROUPS = ((0, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))
LANDMARK_FRACTIONS = (0.01, 0.1, 1.0)
CROP_MARGIN = 0.25  # of the landmark box's larger side, on each side: the brows-to-chin box plus forehead and ears


def zero_shot_prompt(phrase: str, negated: bool = False) -> str:
    return f"a photo of a face {'without' if negated else 'with'} {phrase}"


def fer_prompt(label: str) -> str:
    return f"a photo of a face with {FER_WORDS[label]} expression"


def age_group(age: int) -> str:
    low, high = next(g for g in AGE_GROUPS if g[0] <= age <= g[1])
    return f"{low}+" if high >= 200 else f"{low}-{high}"


@dataclass
class ImageSet:
    """Encoded images of one split of one evaluation file, with their labels."""

    name: str
    split: str
    images: list[bytes]
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def hashes(self) -> list[str]:
        return [sha256(b) for b in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def without(self, hashes: set[str]) -> "ImageSet":
        """This set less the images whose SHA-256 is in hashes."""
        keep = np.array([h not in hashes for h in self.hashes], dtype=bool)
        images = [image for image, kept in zip(self.images, keep) if kept]
        return ImageSet(self.name, self.split, images, {k: v[keep] for k, v in self.labels.items()})


def _sample(n: int, limit: int, seed: int) -> list[int]:
    """At most `limit` of range(n) (0: all), a fixed pseudo-random choice, in file order."""
    if not limit or n <= limit:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def _take(table, limit: int, seed: int):
    return table.take(_sample(table.num_rows, limit, seed))


def celeba_test(path: Path, limit: int, seed: int) -> ImageSet:
    names = attribute_names(path)
    table = pq.read_table(path, columns=["image", "split", *names])
    table = _take(table.filter(pc.equal(table["split"], "test")), limit, seed)
    rows = table.to_pylist()
    labels = {n: np.array([present(r, n) for r in rows]) for n in names}
    return ImageSet("celeba", "test", [r["image"] for r in rows], labels)


def fer2013(path: Path, split: str, limit: int, seed: int) -> ImageSet:
    table = pq.read_table(path, columns=["image", "label", "usage"])
    test = pc.is_in(table["usage"], value_set=pa.array(FER_TEST_USAGES))
    table = _take(table.filter(test if split == "test" else pc.invert(test)), limit, seed)
    return ImageSet("fer2013", split, table.column("image").to_pylist(), {"expression": np.array(table.column("label").to_pylist())})


def utkface(path: Path, split: str, limit: int, seed: int) -> ImageSet:
    table = pq.read_table(path, columns=["image", "age", "gender", "race", "split"])
    rows = _take(table.filter(pc.equal(table["split"], split)), limit, seed).to_pylist()
    labels = {
        "race": np.array([UTK_RACES[r["race"]] for r in rows]),
        "gender": np.array(["female" if r["gender"] == 1 else "male" for r in rows]),
        "age_group": np.array([age_group(r["age"]) for r in rows]),
    }
    return ImageSet("utkface", split, [r["image"] for r in rows], labels)


def in_300w_test(image_id: str) -> bool:
    return int(hashlib.sha256(image_id.encode()).hexdigest(), 16) % 3 == 0


def faces_300w(paths: list[Path], test_limit: int, train_limit: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """(train, test) square face crops (JPEG) with their 68 points as fractions of the crop,
    at most train_limit and test_limit faces (0: all)."""
    from PIL import Image

    parts = {"train": ([], []), "test": ([], [])}
    for path in paths:
        for row in pq.read_table(path, columns=["image", "image_id", "points", "face_box"]).to_pylist():
            x0, y0, x1, y1 = row["face_box"]
            side = max(x1 - x0, y1 - y0) * (1 + 2 * CROP_MARGIN)
            left, top = (x0 + x1 - side) / 2, (y0 + y1 - side) / 2
            with Image.open(io.BytesIO(row["image"])) as image:
                crop = image.convert("RGB").crop((round(left), round(top), round(left + side), round(top + side)))
            buffer = io.BytesIO()
            crop.save(buffer, format="JPEG", quality=95)
            points = (np.array(row["points"], dtype=np.float32) - [round(left), round(top)]) / (round(left + side) - round(left))
            images, shapes = parts["test" if in_300w_test(row["image_id"]) else "train"]
            images.append(buffer.getvalue())
            shapes.append(points)
    limits = {"train": train_limit, "test": test_limit}
    sets = []
    for split, (images, shapes) in parts.items():
        keep = _sample(len(images), limits[split], seed)
        sets.append(ImageSet("300w", split, [images[i] for i in keep], {"points": np.stack([shapes[i] for i in keep])}))
    return tuple(sets)


@dataclass
class EvalSuite:
    """Every image set the evaluation reads, loaded once and shared by every model scored."""

    celeba: ImageSet
    fer_train: ImageSet
    fer_test: ImageSet
    utk_train: ImageSet
    utk_test: ImageSet
    landmarks_train: ImageSet
    landmarks_test: ImageSet
    # Images dropped from a fitting split because a scored split holds the same bytes.
    removed_from_fitting: dict[str, int] = field(default_factory=dict)

    @property
    def sets(self) -> list[ImageSet]:
        return [self.celeba, self.fer_train, self.fer_test, self.utk_train, self.utk_test, self.landmarks_train, self.landmarks_test]

    @property
    def scored(self) -> list[ImageSet]:
        return [self.celeba, self.fer_test, self.utk_test, self.landmarks_test]


def load_suite(data_dir: Path, test_limit: int, train_limit: int, seed: int) -> EvalSuite:
    """The evaluation files of ../shared/data/eval; limits cap the images per split (0: all)."""
    missing = [n for n in ("celeba_attr", "fer2013", "utkface", "faces_300w_afw", "faces_300w_helen_test") if not (data_dir / f"{n}.parquet").is_file()]  # fmt: skip
    if missing:
        raise FileNotFoundError(f"{data_dir}: evaluation file(s) missing: {', '.join(m + '.parquet' for m in missing)}")
    landmarks_train, landmarks_test = faces_300w(
        [data_dir / "faces_300w_afw.parquet", data_dir / "faces_300w_helen_test.parquet"], test_limit, train_limit, seed
    )
    suite = EvalSuite(
        celeba=celeba_test(data_dir / "celeba_attr.parquet", test_limit, seed),
        fer_train=fer2013(data_dir / "fer2013.parquet", "train", train_limit, seed),
        fer_test=fer2013(data_dir / "fer2013.parquet", "test", test_limit, seed),
        utk_train=utkface(data_dir / "utkface.parquet", "train", train_limit, seed),
        utk_test=utkface(data_dir / "utkface.parquet", "test", test_limit, seed),
        landmarks_train=landmarks_train,
        landmarks_test=landmarks_test,
    )
    # FER2013 and UTKFace hold byte-identical images in both their splits: a fitting split loses
    # those, so no probe or head is fitted on an image it is scored on.
    tested = {h for s in suite.scored for h in s.hashes}
    for name in ("fer_train", "utk_train", "landmarks_train"):
        fitting = getattr(suite, name)
        kept = fitting.without(tested)
        suite.removed_from_fitting[name] = len(fitting) - len(kept)
        setattr(suite, name, kept)
    return suite


def embed_images(model, images: ImageSet, cache_dir: Path | None, device) -> np.ndarray:
    """Unit image embeddings; the frozen stem's outputs are cached, so a second model costs only its top."""
    import torch

    from flip_assets.core.training.contrastive_training import STEM_BATCH, image_stems

    stems = image_stems(model, images.images, images.hashes, cache_dir, device)
    with torch.inference_mode():
        chunks = [model.embed_images(stems[i : i + STEM_BATCH].to(device)).cpu() for i in range(0, len(stems), STEM_BATCH)]
    return torch.cat(chunks).numpy()


def embed_texts(model, tokenizer, texts: list[str], device) -> np.ndarray:
    import torch

    from flip_assets.core.training.dual_encoder import tokenize

    ids, mask = tokenize(tokenizer, texts, model.config.max_text_tokens)
    with torch.inference_mode():
        return model.encode_texts(ids.to(device), mask.to(device)).cpu().numpy()


def zero_shot_celeba(images: np.ndarray, with_texts: np.ndarray, without_texts: np.ndarray, labels: dict[str, np.ndarray]) -> list[dict]:
    """Per attribute: accuracy, balanced accuracy, and the accuracy of always answering the majority."""
    rows = []
    for i, name in enumerate(labels):
        predicted = images @ with_texts[i] > images @ without_texts[i]
        truth = labels[name]
        recalls = [float((predicted[truth == v] == v).mean()) for v in (True, False) if (truth == v).any()]
        rows.append({
            "attribute": name, "accuracy": float((predicted == truth).mean()), "balanced_accuracy": float(np.mean(recalls)),
            "majority_accuracy": float(max(truth.mean(), 1 - truth.mean())),
        })  # fmt: skip
    return rows


def zero_shot_classes(images: np.ndarray, class_texts: np.ndarray, classes: list[str], labels: np.ndarray) -> dict:
    predicted = np.array(classes)[(images @ class_texts.T).argmax(1)]
    recalls = [float((predicted[labels == c] == c).mean()) for c in classes if (labels == c).any()]
    return {"accuracy": float((predicted == labels).mean()), "mean_class_recall": float(np.mean(recalls))}


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int) -> float:
    """Test accuracy of logistic regression on standardised frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5, random_state=seed))
    probe.fit(train_x, train_y)
    return float((probe.predict(test_x) == test_y).mean())


def nme_inter_ocular(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean point error over the outer-eye-corner distance (points 36, 45), averaged over faces."""
    ocular = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
    return float((np.linalg.norm(predicted - truth, axis=2).mean(1) / ocular).mean())


def landmark_nme(train_x: np.ndarray, train_points: np.ndarray, test_x: np.ndarray, test_points: np.ndarray, fraction: float, seed: int) -> float:
    """NME of a ridge-regression landmark head fitted on `fraction` of the train faces (at least 2)."""
    from sklearn.linear_model import Ridge

    keep = _sample(len(train_x), max(2, round(fraction * len(train_x))), seed)
    head = Ridge(alpha=1.0).fit(train_x[keep], train_points[keep].reshape(len(keep), -1))
    return nme_inter_ocular(head.predict(test_x).reshape(test_points.shape), test_points)


def evaluate(model, tokenizer, suite: EvalSuite, cache_dir: Path | None, device, seed: int) -> dict[str, list[dict]]:
    """Every table's rows for one model: zero_shot, linear_probe, face_alignment (and the
    per-attribute zero-shot rows under celeba_attributes)."""
    embedded = {id(s): embed_images(model, s, cache_dir, device) for s in suite.sets}
    x = lambda s: embedded[id(s)]  # noqa: E731
    names = list(suite.celeba.labels)
    with_texts = embed_texts(model, tokenizer, [zero_shot_prompt(ATTRIBUTE_PHRASES[n][0]) for n in names], device)
    without_texts = embed_texts(model, tokenizer, [zero_shot_prompt(ATTRIBUTE_PHRASES[n][0], True) for n in names], device)
    attributes = zero_shot_celeba(x(suite.celeba), with_texts, without_texts, suite.celeba.labels)
    classes = list(FER_WORDS)
    fer = zero_shot_classes(x(suite.fer_test), embed_texts(model, tokenizer, [fer_prompt(c) for c in classes], device), classes, suite.fer_test.labels["expression"])
    mean = lambda key: float(np.mean([a[key] for a in attributes]))  # noqa: E731
    zero_shot = [
        {"task": "CelebA 40 attributes", "metric": "mean accuracy", "value": mean("accuracy"), "test_images": len(suite.celeba)},
        {"task": "CelebA 40 attributes", "metric": "mean balanced accuracy", "value": mean("balanced_accuracy"), "test_images": len(suite.celeba)},
        {"task": "FER2013 expression", "metric": "accuracy", "value": fer["accuracy"], "test_images": len(suite.fer_test)},
        {"task": "FER2013 expression", "metric": "mean class recall", "value": fer["mean_class_recall"], "test_images": len(suite.fer_test)},
    ]
    probes = [
        {"task": f"UTKFace {label}", "metric": "accuracy", "value": linear_probe(x(suite.utk_train), suite.utk_train.labels[label], x(suite.utk_test), suite.utk_test.labels[label], seed), "test_images": len(suite.utk_test)}
        for label in ("race", "gender", "age_group")
    ]  # fmt: skip
    probes.append({
        "task": "FER2013 expression", "metric": "accuracy", "test_images": len(suite.fer_test),
        "value": linear_probe(x(suite.fer_train), suite.fer_train.labels["expression"], x(suite.fer_test), suite.fer_test.labels["expression"], seed),
    })  # fmt: skip
    alignment = [
        {"task": f"300-W, head on {fraction:.0%} of train", "metric": "NME (inter-ocular)", "test_images": len(suite.landmarks_test),
         "value": landmark_nme(x(suite.landmarks_train), suite.landmarks_train.labels["points"], x(suite.landmarks_test), suite.landmarks_test.labels["points"], fraction, seed)}
        for fraction in LANDMARK_FRACTIONS
    ]  # fmt: skip
    return {"zero_shot": zero_shot, "linear_probe": probes, "face_alignment": alignment, "celeba_attributes": attributes}
