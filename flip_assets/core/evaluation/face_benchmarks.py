"""The paper's downstream evaluations (section 4.2) on the shared evaluation files, for any
dual encoder of dual_encoder.py, each task scored per item (uncertainty.TaskScores) so that
its interval can be bootstrapped:

- zero-shot with the paper's templates: CelebA attributes ("a photo of a face with / without
  {attribute}", the closer prompt wins), in two rows: the UNSEEN_ATTRIBUTES, which no CelebA
  training caption names (real zero-shot), and the SEEN_ATTRIBUTES, whose captions are written
  from these very labels (in-distribution); FER2013 expressions ("a photo of a face with {label}
  expression", 7 classes; stands in for RAF-DB, AffectNet, ExpW) on its whole test split;
- linear probe: a ridge classifier (one-vs-rest least squares, as cheap as a closed form) on the
  image tower's pooled features before the projection head (MobileNetV2: 1,280-d), fitted on the
  train split and scored on the test split, for UTKFace race, gender and age group (FairFace's
  nine groups; UTKFace stands in for FairFace) and FER2013. The same features for the initial
  and the trained model: a probe on the 256-d embedding (a linear map of them) cannot do better
  than one on them, beyond regularisation. With the CPU configuration the trained tower differs
  from the initial one only in its last block (image_frozen_blocks 18), so a probe gain is small
  by construction: the tables say whether there is one;
- face alignment (paper Table 4's 1 / 10 / 100 % protocol): a ridge landmark head on the image
  tower's *spatial* feature map (MobileNetV2: 1,280 x 4 x 4 at 112 px; the pooled vector
  cannot place points) of 300-W face crops, fitted on 1 %, 10 % and 100 % of a train part; NME
  normalised by the inter-ocular distance (outer eye corners, points 36 and 45). 300-W split:
  the AFW and Helen-test faces together, grouped by picture (`image_id`), a picture in the test
  part when int(sha256(image_id), 16) % 3 == 0 (about a third).

Regularisation (the ridge alpha) is chosen on a validation part carved from the train split
(VALIDATION_SHARE of its items, of its pictures for 300-W), never on a test split.

baselines() scores what the trained model must beat, on the same items: chance (the expected
score of a uniform guess), the majority class of the fitting split, and the same heads on raw
32 x 32 RGB pixels (and, for landmarks, the mean train shape, which ignores the image). The
initial model is evaluate()d like the trained one: its probes and heads read its own pretrained
features, its zero-shot its freshly initialised projection heads.

Only test splits are scored: CelebA `split == "test"`, FER2013 PublicTest + PrivateTest,
UTKFace `split == "test"`, the 300-W test part; train splits only fit probes and heads.
Clusters: 300-W items are clustered by picture (image_id); the CelebA, UTKFace and FER2013
files carry no identity, so their items are resampled one by one.
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

from flip_assets.core.evaluation.uncertainty import TaskScores
from flip_assets.core.training.training_pairs import ATTRIBUTE_PHRASES, SEEN_ATTRIBUTES, UNSEEN_ATTRIBUTES, attribute_names, present, sha256

FER_WORDS = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy", "neutral": "neutral", "sad": "sad", "surprise": "surprised"}  # fmt: skip
FER_TEST_USAGES = ("PublicTest", "PrivateTest")
UTK_RACES = ("White", "Black", "Asian", "Indian", "Others")
AGE_GROUPS = ((0, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))
LANDMARK_FRACTIONS = (0.01, 0.1, 1.0)
CROP_MARGIN = 0.25  # of the landmark box's larger side, on each side: the brows-to-chin box plus forehead and ears
VALIDATION_SHARE = 0.2
# Ridge penalties tried on the validation part, per feature: standardised features make the
# Gram matrix's scale the feature count, so the same grid suits 1,280 pooled features, 3,072
# pixels and a 20,480-value feature map.
ALPHAS_PER_FEATURE = tuple(np.geomspace(1e-3, 1e2, 11))
PIXEL_SIZE = 32

TABLES = ("zero_shot", "linear_probe", "face_alignment")
UNSEEN_TASK = f"CelebA {len(UNSEEN_ATTRIBUTES)} unseen attributes (zero-shot: no training caption names them)"
SEEN_TASK = f"CelebA {len(SEEN_ATTRIBUTES)} seen attributes: in-distribution (captions written from these labels)"
FER_ZERO_SHOT_TASK = "FER2013 expression (7 classes)"
PROBE_TASKS = (("UTKFace race", "utk", "race"), ("UTKFace gender", "utk", "gender"), ("UTKFace age_group", "utk", "age_group"), ("FER2013 expression", "fer", "expression"))  # fmt: skip
BALANCED_ACCURACY, CLASS_RECALL, ACCURACY, NME = "mean balanced accuracy", "mean class recall", "accuracy", "NME (inter-ocular)"


def zero_shot_prompt(phrase: str, negated: bool = False) -> str:
    return f"a photo of a face {'without' if negated else 'with'} {phrase}"


def fer_prompt(label: str) -> str:
    return f"a photo of a face with {FER_WORDS[label]} expression"


def age_group(age: int) -> str:
    low, high = next(g for g in AGE_GROUPS if g[0] <= age <= g[1])
    return f"{low}+" if high >= 200 else f"{low}-{high}"


def landmark_task(fraction: float) -> str:
    return f"300-W, head on {fraction:.0%} of train"


@dataclass
class ImageSet:
    """Encoded images of one split of one evaluation file, with their labels and, where the
    data has one, a cluster id per image (300-W: the picture)."""

    name: str
    split: str
    images: list[bytes]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    clusters: np.ndarray | None = None

    @property
    def hashes(self) -> list[str]:
        return [sha256(b) for b in self.images]

    @property
    def cluster_ids(self) -> np.ndarray:
        """The clusters the bootstrap resamples: the data's, else one per image."""
        return np.arange(len(self)) if self.clusters is None else self.clusters

    def __len__(self) -> int:
        return len(self.images)

    def without(self, hashes: set[str]) -> "ImageSet":
        """This set less the images whose SHA-256 is in hashes."""
        keep = np.array([h not in hashes for h in self.hashes], dtype=bool)
        images = [image for image, kept in zip(self.images, keep) if kept]
        clusters = None if self.clusters is None else self.clusters[keep]
        return ImageSet(self.name, self.split, images, {k: v[keep] for k, v in self.labels.items()}, clusters)


def _sample(n: int, limit: int, seed: int) -> list[int]:
    """At most `limit` of range(n) (0: all), a fixed pseudo-random choice, in file order."""
    if not limit or n <= limit:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def _take(table, limit: int, seed: int):
    return table.take(_sample(table.num_rows, limit, seed))


def celeba_split(path: Path, split: str, limit: int, seed: int, with_images: bool = True) -> ImageSet:
    names = attribute_names(path)
    table = pq.read_table(path, columns=["image", "split", *names] if with_images else ["split", *names])
    table = _take(table.filter(pc.equal(table["split"], split)), limit, seed)
    rows = table.to_pylist()
    labels = {n: np.array([present(r, n) for r in rows]) for n in names}
    return ImageSet("celeba", split, [r["image"] for r in rows] if with_images else [], labels)


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
    """(train, test) square face crops (JPEG) with their 68 points as fractions of the crop and
    their picture (image_id) as cluster, at most train_limit and test_limit faces (0: all)."""
    from PIL import Image

    parts = {"train": ([], [], []), "test": ([], [], [])}
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
            images, shapes, pictures = parts["test" if in_300w_test(row["image_id"]) else "train"]
            images.append(buffer.getvalue())
            shapes.append(points)
            pictures.append(row["image_id"])
    limits = {"train": train_limit, "test": test_limit}
    sets = []
    for split, (images, shapes, pictures) in parts.items():
        keep = _sample(len(images), limits[split], seed)
        sets.append(ImageSet("300w", split, [images[i] for i in keep], {"points": np.stack([shapes[i] for i in keep])}, np.array([pictures[i] for i in keep])))  # fmt: skip
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
    # CelebA's train split, labels only: the majority answer per attribute.
    celeba_train: ImageSet | None = None
    # Images dropped from a fitting split because a scored split holds the same bytes.
    removed_from_fitting: dict[str, int] = field(default_factory=dict)

    @property
    def sets(self) -> list[ImageSet]:
        return [self.celeba, self.fer_train, self.fer_test, self.utk_train, self.utk_test, self.landmarks_train, self.landmarks_test]

    @property
    def scored(self) -> list[ImageSet]:
        return [self.celeba, self.fer_test, self.utk_test, self.landmarks_test]

    def fitting(self, kind: str) -> ImageSet:
        return {"utk": self.utk_train, "fer": self.fer_train, "landmarks": self.landmarks_train}[kind]

    def testing(self, kind: str) -> ImageSet:
        return {"utk": self.utk_test, "fer": self.fer_test, "landmarks": self.landmarks_test}[kind]


def load_suite(data_dir: Path, test_limit: int, train_limit: int, seed: int) -> EvalSuite:
    """The evaluation files of ../shared/data/eval; limits cap the images per split (0: all)."""
    missing = [n for n in ("celeba_attr", "fer2013", "utkface", "faces_300w_afw", "faces_300w_helen_test") if not (data_dir / f"{n}.parquet").is_file()]  # fmt: skip
    if missing:
        raise FileNotFoundError(f"{data_dir}: evaluation file(s) missing: {', '.join(m + '.parquet' for m in missing)}")
    landmarks_train, landmarks_test = faces_300w(
        [data_dir / "faces_300w_afw.parquet", data_dir / "faces_300w_helen_test.parquet"], test_limit, train_limit, seed
    )
    suite = EvalSuite(
        celeba=celeba_split(data_dir / "celeba_attr.parquet", "test", test_limit, seed),
        fer_train=fer2013(data_dir / "fer2013.parquet", "train", train_limit, seed),
        fer_test=fer2013(data_dir / "fer2013.parquet", "test", test_limit, seed),
        utk_train=utkface(data_dir / "utkface.parquet", "train", train_limit, seed),
        utk_test=utkface(data_dir / "utkface.parquet", "test", test_limit, seed),
        landmarks_train=landmarks_train,
        landmarks_test=landmarks_test,
        celeba_train=celeba_split(data_dir / "celeba_attr.parquet", "train", 0, seed, with_images=False),
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


# --- which rows each fit reads (one home: the fits and the check read these) ------------------


def validation_rows(clusters: np.ndarray, seed: int) -> np.ndarray:
    """Boolean mask of the validation part carved from a fitting split: VALIDATION_SHARE of its
    clusters (a fixed pseudo-random choice), so a picture is never on both sides."""
    unique = np.unique(clusters)
    chosen = np.random.default_rng(seed).permutation(len(unique))[: max(1, round(VALIDATION_SHARE * len(unique)))]
    return np.isin(clusters, unique[chosen])


def landmark_fit_rows(suite: EvalSuite, seed: int) -> dict[float, np.ndarray]:
    """Per fraction, the rows of the 300-W train part its head is fitted on: that share of the
    non-validation rows (at least 2)."""
    fit_pool = np.flatnonzero(~validation_rows(suite.landmarks_train.cluster_ids, seed))
    return {f: fit_pool[_sample(len(fit_pool), max(2, round(f * len(fit_pool))), seed)] for f in LANDMARK_FRACTIONS}


def fitted_hashes(suite: EvalSuite, seed: int) -> dict[str, set[str]]:
    """Per fit (probe or head), the SHA-256 of every image it reads to fit or to choose its
    regularisation: what `only_test_splits_scored` compares with the scored images."""
    fits = {task: set(suite.fitting(kind).hashes) for task, kind, _ in PROBE_TASKS}
    hashes = suite.landmarks_train.hashes
    validation = validation_rows(suite.landmarks_train.cluster_ids, seed)
    for fraction, rows in landmark_fit_rows(suite, seed).items():
        fits[landmark_task(fraction)] = {hashes[i] for i in rows} | {h for h, v in zip(hashes, validation) if v}
    return fits


# --- features ------------------------------------------------------------------------------------


def pixels(images: ImageSet) -> np.ndarray:
    """Raw PIXEL_SIZE x PIXEL_SIZE RGB pixels (the centre square), flattened, in [0, 1]."""
    from flip_assets.core.training.contrastive_training import decode_square

    if not len(images):
        return np.zeros((0, 3 * PIXEL_SIZE * PIXEL_SIZE), np.float32)
    return np.stack([decode_square(b, PIXEL_SIZE).reshape(-1) for b in images.images]).astype(np.float32) / 255


def image_features(model, images: ImageSet, cache_dir: Path | None, device, spatial: bool = False) -> dict[str, np.ndarray]:
    """{"embedding": unit embeddings, "pooled": the tower's pooled features before the
    projection, "map": the flattened spatial feature map (only with spatial)}. The frozen
    stem's outputs are cached, so a second model costs only its top."""
    import torch
    from torch.nn import functional as F

    from flip_assets.core.training.contrastive_training import STEM_BATCH, image_stems

    stems = image_stems(model, images.images, images.hashes, cache_dir, device)
    out = {"embedding": [], "pooled": [], "map": []}
    with torch.inference_mode():
        for i in range(0, len(stems), STEM_BATCH):
            feature_map, pooled = model.image_features(stems[i : i + STEM_BATCH].to(device))
            out["embedding"].append(F.normalize(model.image_head(pooled).float(), dim=-1).cpu())
            out["pooled"].append(pooled.float().cpu())
            if spatial:
                out["map"].append(feature_map.float().flatten(1).cpu())
    return {k: torch.cat(v).numpy() for k, v in out.items() if v}


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


# --- heads ---------------------------------------------------------------------------------------


def alphas(features: np.ndarray) -> list[float]:
    return [a * features.shape[1] for a in ALPHAS_PER_FEATURE]


def ridge_predictions(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, alphas) -> list[np.ndarray]:
    """Ridge regression (with intercept) on standardised features, one prediction of test_x per
    alpha, from one eigendecomposition of the smaller Gram matrix."""
    mean, scale = train_x.mean(0), train_x.std(0) + 1e-6
    x, t = (train_x - mean) / scale, (test_x - mean) / scale
    y_mean = train_y.mean(0)
    y = train_y - y_mean
    if x.shape[0] <= x.shape[1]:  # dual: (X X' + a I)^-1 y
        values, vectors = np.linalg.eigh(x @ x.T)
        projected, cross = vectors.T @ y, t @ x.T @ vectors
        return [cross @ (projected / (values + a)[:, None]) + y_mean for a in alphas]
    values, vectors = np.linalg.eigh(x.T @ x)
    projected, test = vectors.T @ (x.T @ y), t @ vectors
    return [test @ (projected / (values + a)[:, None]) + y_mean for a in alphas]


def _one_hot(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return (labels[:, None] == classes[None, :]).astype(np.float64)


def ridge_probe(train_x, train_y, test_x, clusters, seed: int) -> np.ndarray:
    """Predicted classes of a ridge classifier (one-vs-rest targets), its alpha the best on the
    validation part of the train split, then refitted on the whole train split."""
    classes = np.unique(train_y)
    validation = validation_rows(clusters, seed)
    grid = alphas(train_x)
    tried = ridge_predictions(train_x[~validation], _one_hot(train_y[~validation], classes), train_x[validation], grid)
    best = grid[int(np.argmax([(classes[p.argmax(1)] == train_y[validation]).mean() for p in tried]))]
    return classes[ridge_predictions(train_x, _one_hot(train_y, classes), test_x, [best])[0].argmax(1)]


def nme_per_face(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean point error over the outer-eye-corner distance (points 36, 45), per face."""
    ocular = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=1)
    return np.linalg.norm(predicted - truth, axis=2).mean(1) / ocular


def nme_inter_ocular(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(nme_per_face(predicted, truth).mean())


def landmark_nmes(train_x, train_points, test_x, test_points, validation, rows) -> np.ndarray:
    """Per test face, the NME of a ridge landmark head fitted on `rows` of the train part, its
    alpha the one with the lowest NME on the validation rows."""
    flat = train_points.reshape(len(train_points), -1)
    grid = alphas(train_x)
    tried = ridge_predictions(train_x[rows], flat[rows], train_x[validation], grid)
    best = grid[int(np.argmin([nme_inter_ocular(p.reshape(-1, 68, 2), train_points[validation]) for p in tried]))]
    predicted = ridge_predictions(train_x[rows], flat[rows], test_x, [best])[0]
    return nme_per_face(predicted.reshape(test_points.shape), test_points)


# --- per-item scores -----------------------------------------------------------------------------


def _scores(table, task, metric, model, values, labels, clusters, predictions=None, **kw) -> TaskScores:
    values = np.asarray(values, dtype=np.float64)
    return TaskScores(table, task, metric, model, values if values.ndim > 1 else values[:, None], labels, clusters, predictions=None if predictions is None else np.asarray(predictions).reshape(1, len(values), -1), **kw)  # fmt: skip


def attribute_labels(images: ImageSet, names: tuple[str, ...]) -> np.ndarray:
    return np.stack([images.labels[n] for n in names], axis=1)


def zero_shot_attributes(embeddings: np.ndarray, with_texts: np.ndarray, without_texts: np.ndarray, truth: np.ndarray):
    """(per item and attribute: right or not, the prediction), the closer prompt winning."""
    predicted = embeddings @ with_texts.T > embeddings @ without_texts.T
    return (predicted == truth).astype(float), predicted


def zero_shot_classes(embeddings: np.ndarray, class_texts: np.ndarray, classes: list[str], labels: np.ndarray):
    predicted = np.array(classes)[(embeddings @ class_texts.T).argmax(1)]
    return (predicted == labels).astype(float), predicted


def evaluate(model, tokenizer, suite: EvalSuite, cache_dir: Path | None, device, seed: int, model_name: str = "model", tables: tuple[str, ...] = TABLES) -> list[TaskScores]:  # fmt: skip
    """One model's per-item scores on every task of `tables` (zero_shot, linear_probe,
    face_alignment), each a TaskScores named model_name (module docstring for the protocols).
    `seed` fixes the validation parts and samples, not the model."""
    results, computed = [], {}

    def features(images: ImageSet, kind: str) -> np.ndarray:
        if (id(images), kind) not in computed:
            for name, value in image_features(model, images, cache_dir, device, spatial=kind == "map").items():
                computed[(id(images), name)] = value
        return computed[(id(images), kind)]

    if "zero_shot" in tables:
        embedding = lambda s: features(s, "embedding")  # noqa: E731
        celeba = embedding(suite.celeba)
        for task, names in ((UNSEEN_TASK, UNSEEN_ATTRIBUTES), (SEEN_TASK, SEEN_ATTRIBUTES)):
            with_texts = embed_texts(model, tokenizer, [zero_shot_prompt(ATTRIBUTE_PHRASES[n][0]) for n in names], device)
            without_texts = embed_texts(model, tokenizer, [zero_shot_prompt(ATTRIBUTE_PHRASES[n][0], True) for n in names], device)
            truth = attribute_labels(suite.celeba, names)
            right, predicted = zero_shot_attributes(celeba, with_texts, without_texts, truth)
            results.append(_scores("zero_shot", task, BALANCED_ACCURACY, model_name, right, truth, suite.celeba.cluster_ids, predicted, balanced=True, extra={"columns": list(names)}))  # fmt: skip
        classes, labels = list(FER_WORDS), suite.fer_test.labels["expression"]
        right, predicted = zero_shot_classes(embedding(suite.fer_test), embed_texts(model, tokenizer, [fer_prompt(c) for c in classes], device), classes, labels)  # fmt: skip
        results.append(_scores("zero_shot", FER_ZERO_SHOT_TASK, CLASS_RECALL, model_name, right, labels, suite.fer_test.cluster_ids, predicted, balanced=True))  # fmt: skip
    if "linear_probe" in tables:
        pooled = {kind: (features(suite.fitting(kind), "pooled"), features(suite.testing(kind), "pooled")) for kind in ("utk", "fer")}
        results += probe_scores(suite, pooled, model_name, seed)
    if "face_alignment" in tables:
        train, test = (features(s, "map") for s in (suite.landmarks_train, suite.landmarks_test))
        results += landmark_scores(suite, train, test, model_name, seed)
    return results


def probe_scores(suite: EvalSuite, features: dict[str, tuple[np.ndarray, np.ndarray]], model_name: str, seed: int) -> list[TaskScores]:
    """The probes' per-item scores on (fitting, test) features per data set kind ("utk", "fer")."""
    results = []
    for task, kind, label in PROBE_TASKS:
        fitting, testing = suite.fitting(kind), suite.testing(kind)
        predicted = ridge_probe(features[kind][0], fitting.labels[label], features[kind][1], fitting.cluster_ids, seed)
        truth = testing.labels[label]
        results.append(_scores("linear_probe", task, ACCURACY, model_name, predicted == truth, truth, testing.cluster_ids, predicted))
    return results


def landmark_scores(suite: EvalSuite, train_x: np.ndarray, test_x: np.ndarray, model_name: str, seed: int) -> list[TaskScores]:
    train, test = suite.landmarks_train, suite.landmarks_test
    validation = validation_rows(train.cluster_ids, seed)
    results = []
    for fraction, rows in landmark_fit_rows(suite, seed).items():
        nmes = landmark_nmes(train_x, train.labels["points"], test_x, test.labels["points"], validation, rows)
        results.append(_scores("face_alignment", landmark_task(fraction), NME, model_name, nmes, np.zeros(len(test)), test.cluster_ids, higher_is_better=False))  # fmt: skip
    return results


CHANCE, MAJORITY, PIXELS, MEAN_SHAPE = "chance", "majority class", "raw pixels", "mean shape"


def baselines(suite: EvalSuite, seed: int) -> list[TaskScores]:
    """What the models must beat, per task and on the same items: chance (a uniform guess's
    expected score), the fitting split's majority class (CelebA: its train split, per
    attribute), ridge heads on raw pixels, and for landmarks the mean train shape."""
    results = []
    celeba, train_labels = suite.celeba, suite.celeba_train.labels
    for task, names in ((UNSEEN_TASK, UNSEEN_ATTRIBUTES), (SEEN_TASK, SEEN_ATTRIBUTES)):
        truth = attribute_labels(celeba, names)
        majority = np.array([train_labels[n].mean() >= 0.5 for n in names])
        results.append(_scores("zero_shot", task, BALANCED_ACCURACY, CHANCE, np.full(truth.shape, 0.5), truth, celeba.cluster_ids, balanced=True))  # fmt: skip
        results.append(_scores("zero_shot", task, BALANCED_ACCURACY, MAJORITY, truth == majority[None, :], truth, celeba.cluster_ids, balanced=True))  # fmt: skip
    fer = suite.fer_test.labels["expression"]
    fer_majority = _majority(suite.fer_train.labels["expression"])
    results.append(_scores("zero_shot", FER_ZERO_SHOT_TASK, CLASS_RECALL, CHANCE, np.full(len(fer), 1 / len(FER_WORDS)), fer, suite.fer_test.cluster_ids, balanced=True))  # fmt: skip
    results.append(_scores("zero_shot", FER_ZERO_SHOT_TASK, CLASS_RECALL, MAJORITY, fer == fer_majority, fer, suite.fer_test.cluster_ids, balanced=True))  # fmt: skip
    raw = {kind: (pixels(suite.fitting(kind)), pixels(suite.testing(kind))) for kind in ("utk", "fer", "landmarks")}
    for task, kind, label in PROBE_TASKS:
        fitting, truth, clusters = suite.fitting(kind).labels[label], suite.testing(kind).labels[label], suite.testing(kind).cluster_ids
        results.append(_scores("linear_probe", task, ACCURACY, CHANCE, np.full(len(truth), 1 / len(np.unique(fitting))), truth, clusters))
        results.append(_scores("linear_probe", task, ACCURACY, MAJORITY, truth == _majority(fitting), truth, clusters))
    for scores in probe_scores(suite, {k: raw[k] for k in ("utk", "fer")}, PIXELS, seed):
        results.append(scores)
    results += landmark_scores(suite, *raw["landmarks"], PIXELS, seed)
    train, test = suite.landmarks_train, suite.landmarks_test
    for fraction, rows in landmark_fit_rows(suite, seed).items():
        mean_shape = train.labels["points"][rows].mean(0)
        nmes = nme_per_face(np.broadcast_to(mean_shape, test.labels["points"].shape), test.labels["points"])
        results.append(_scores("face_alignment", landmark_task(fraction), NME, MEAN_SHAPE, nmes, np.zeros(len(test)), test.cluster_ids, higher_is_better=False))  # fmt: skip
    return results


def _majority(labels: np.ndarray):
    values, counts = np.unique(labels, return_counts=True)
    return values[int(np.argmax(counts))]
