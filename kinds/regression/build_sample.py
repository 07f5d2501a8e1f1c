"""Build kinds/regression/sample.jsonl from scikit-learn's bundled diabetes dataset.

Developer tool of the template (not rendered). The sample is a real dataset: 442 diabetes
patients, 10 baseline measurements in their original units (age in years, sex, BMI, mean blood
pressure and six blood serum measurements), and the disease progression one year later. Each
item gets a fixed train/test split and a `difficulty` segment: how far its target lies from the
training mean (extreme outcomes are the hard ones for any regressor that shrinks to the mean).

    python kinds/regression/build_sample.py
"""

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def main() -> None:
    diabetes = load_diabetes(scaled=False)
    x, y = diabetes.data, diabetes.target
    assert tuple(diabetes.feature_names) == FEATURES
    train_idx, _ = train_test_split(np.arange(len(y)), test_size=0.25, random_state=0)
    train = set(train_idx.tolist())
    mean, std = y[train_idx].mean(), y[train_idx].std()
    distance = np.abs(y - mean) / std
    difficulty = np.where(distance < 0.5, "easy", np.where(distance < 1.5, "medium", "hard"))
    out = Path(__file__).with_name("sample.jsonl")
    with out.open("w") as f:
        for i in range(len(y)):
            item = {"input_id": f"diabetes-{i:03d}", "split": "train" if i in train else "test"}
            item.update({name: float(v) for name, v in zip(FEATURES, x[i], strict=True)})
            item.update(target=float(y[i]), difficulty=str(difficulty[i]))
            f.write(json.dumps(item) + "\n")
    print(f"wrote {out} ({len(y)} items, {len(y) - len(train)} in the test split)")


if __name__ == "__main__":
    main()
