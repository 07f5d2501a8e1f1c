"""Build kinds/classification/sample.jsonl from scikit-learn's bundled wine dataset.

Developer tool of the template (not rendered). The sample is a real dataset: 178 wines, 13
chemical measurements, 3 cultivars. Each item gets a stratified train/test split and a
`difficulty` segment (how many of its 5 nearest neighbours share its class), so the generated
benchmark has a real segmentation to slice by. Rows are written in a seeded shuffled order:
scikit-learn sorts wine by class, and the development phase (`make dev`) takes the first items,
which must not all be one class.

    python kinds/classification/build_sample.py
"""

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler


def main() -> None:
    wine = load_wine()
    x, y = wine.data, wine.target
    scaled = StandardScaler().fit_transform(x)
    neighbours = NearestNeighbors(n_neighbors=6).fit(scaled).kneighbors(scaled, return_distance=False)[:, 1:]
    agree = (y[neighbours] == y[:, None]).sum(axis=1)
    difficulty = np.where(agree == 5, "easy", np.where(agree >= 3, "medium", "hard"))
    train_idx, _ = train_test_split(np.arange(len(y)), test_size=0.4, stratify=y, random_state=0)
    train = set(train_idx.tolist())
    out = Path(__file__).with_name("sample.jsonl")
    with out.open("w") as f:
        for i in np.random.default_rng(0).permutation(len(y)).tolist():
            item = {"input_id": f"wine-{i:03d}", "split": "train" if i in train else "test"}
            item.update({name: float(v) for name, v in zip(wine.feature_names, x[i], strict=False)})
            item.update(label=int(y[i]), difficulty=str(difficulty[i]))
            f.write(json.dumps(item) + "\n")
    print(f"wrote {out} ({len(y)} items)")


if __name__ == "__main__":
    main()
