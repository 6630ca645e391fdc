"""scanpy's conventions, enforced across the public API (the idea of scanpy's
``tests/test_package_structure.py``):

- data first: the positional parameters of a public function are its data (an AnnData,
  a table, a model, arrays), named as such; every option after them is keyword-only;
- results that land in an AnnData go under a ``key_added`` (and functions that return
  new data never change their input);
- plots take ``ax``, ``show`` and ``save``;
- every public function has a numpydoc docstring with an ``Examples`` section.

Deliberate exceptions are listed in ``ALLOWED`` with the reason for each.
"""

from __future__ import annotations

import inspect
import types

import pytest

import scdiff
import scdiff.commands
import scdiff.datasets
import scdiff.metrics
import scdiff.metrics.baselines
import scdiff.perturb
import scdiff.pl

# Names a positional (data) parameter may have.
DATA_NAMES = {
    "adata", "real", "generated", "train", "like", "test", "table", "log", "model", "results",
    "x", "y", "truth", "pred", "groups", "source", "dose", "run", "data", "stats", "t", "delta",
}

# Deliberate exceptions: qualified name -> (positional parameters allowed, reason).
ALLOWED: dict[str, tuple[tuple[str, ...], str]] = {
    "ConditionalDiffusion.__init__": (
        ("adata", "condition", "dose"),
        "the model's contract (DESIGN.md) reads ConditionalDiffusion(adata, 'cell_type'); "
        "condition and dose say what the data are, like scvi's setup_anndata fields",
    ),
    "ConditionalDiffusion.sample": (
        ("n_cells",),
        "model.sample(500) reads naturally and n_cells is the one quantity every call sets",
    ),
    "ConditionalDiffusion.sample_to_h5ad": (
        ("path", "n_cells"),
        "where to write, then how many: save(path) and sample(n_cells) in one call",
    ),
    "ConditionalDiffusion.save": (("path",), "a path is the data of save, as in adata.write_h5ad(path)"),
    "ConditionalDiffusion.load": (("path",), "as save"),
    "scdiff.write_report": (
        ("out_dir", "real", "generated", "table"),
        "the output folder comes first as in the CLI's `evaluate ... --out`; kept for compatibility",
    ),
    "scdiff.commands.sample": (
        ("run", "out"), "a command's two files, as `scdiff sample RUN --out OUT` names them",
    ),
    "scdiff.commands.dose_response": (
        ("run", "out"), "a command's two files, as `scdiff dose-response RUN --out OUT` names them",
    ),
    "ConditionalDiffusion.sample_to_file": (
        ("path", "n_cells"), "as sample_to_h5ad",
    ),
}

# AnnData that may be keyword-only even when required: references beside the data scored,
# always passed by name so calls read evaluate(test, fake, train=train).
REFERENCE_KEYWORDS = {"train"}

# Functions that write into an AnnData they are given, and the parameter that names where.
WRITES_TO_ANNDATA = {"scdiff.evaluate": "key_added"}


def _public_functions():
    modules = [scdiff, scdiff.metrics, scdiff.metrics.baselines, scdiff.pl, scdiff.datasets,
               scdiff.perturb, scdiff.commands]
    seen = set()
    for module in modules:
        names = getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")])
        for name in names:
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType) or not callable(obj) or inspect.isclass(obj):
                continue
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{module.__name__}.{name}", obj
    cls = scdiff.ConditionalDiffusion
    for name in ["__init__", *[n for n in vars(cls) if not n.startswith("_")]]:
        obj = getattr(cls, name)
        if callable(obj):
            yield f"ConditionalDiffusion.{name}", obj


FUNCTIONS = dict(_public_functions())


def test_the_api_is_found():
    assert {"scdiff.evaluate", "scdiff.write_report", "scdiff.pl.compare", "scdiff.datasets.simulate",
            "scdiff.commands.train",
            "ConditionalDiffusion.sample"} <= set(FUNCTIONS)


@pytest.mark.parametrize("qualname", sorted(FUNCTIONS))
def test_data_first_options_keyword_only(qualname):
    params = [p for p in inspect.signature(FUNCTIONS[qualname]).parameters.values()
              if p.name not in ("self", "cls")]
    positional = tuple(p.name for p in params
                       if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    assert not any(p.kind == p.VAR_POSITIONAL for p in params), f"{qualname} takes *args"
    if qualname in ALLOWED:
        assert positional == ALLOWED[qualname][0], (
            f"{qualname}: positional parameters {positional} differ from the allowlisted "
            f"{ALLOWED[qualname][0]}; update the allowlist (with its reason) or the signature")
        return
    extra = [n for n in positional if n not in DATA_NAMES]
    assert not extra, (f"{qualname}: {extra} can be passed by position; make options keyword-only "
                       f"(put them after `*`) or, if they are data, add the name to DATA_NAMES")


@pytest.mark.parametrize("qualname", sorted(FUNCTIONS))
def test_anndata_parameters_come_first(qualname):
    """An AnnData the function works on is among its leading (positional) parameters."""
    if qualname in ALLOWED:
        return
    params = inspect.signature(FUNCTIONS[qualname]).parameters.values()
    for p in params:
        if p.name in REFERENCE_KEYWORDS:
            continue
        if "AnnData" in str(p.annotation) and p.kind == p.KEYWORD_ONLY and p.default is inspect._empty:
            pytest.fail(f"{qualname}: required AnnData {p.name!r} is keyword-only; make it positional")


@pytest.mark.parametrize("qualname", sorted(n for n in FUNCTIONS if n.startswith("scdiff.pl.")))
def test_plots_take_ax_show_save(qualname):
    params = inspect.signature(FUNCTIONS[qualname]).parameters
    for name in ("ax", "show", "save"):
        assert name in params and params[name].kind == params[name].KEYWORD_ONLY, (qualname, name)


@pytest.mark.parametrize("qualname", sorted(WRITES_TO_ANNDATA))
def test_functions_that_write_say_where(qualname):
    params = inspect.signature(FUNCTIONS[qualname]).parameters
    key = WRITES_TO_ANNDATA[qualname]
    assert key in params and params[key].kind == params[key].KEYWORD_ONLY


@pytest.mark.parametrize("qualname", sorted(FUNCTIONS))
def test_documented_with_examples(qualname):
    func = FUNCTIONS[qualname]
    if qualname == "ConditionalDiffusion.__init__":
        func = scdiff.ConditionalDiffusion  # numpydoc documents the constructor on the class
    doc = inspect.getdoc(func) or ""
    assert doc, f"{qualname} has no docstring"
    if qualname.startswith("ConditionalDiffusion.") and qualname != "ConditionalDiffusion.__init__":
        return  # methods are shown in the class's Examples and the tutorials
    assert "Examples\n--------" in doc, f"{qualname} has no Examples section"


def test_evaluate_adds_only_under_key_added(log_adata):
    """evaluate() leaves its inputs alone unless key_added is given, then writes only
    ``generated.uns[key_added]`` (the table and its parameters, as scanpy's ``params``)."""
    real, fake = log_adata[::2].copy(), log_adata[1::2].copy()
    before = (set(real.uns), set(real.obs), set(real.obsm), set(fake.uns), set(fake.obs))
    scdiff.evaluate(real, fake, condition="cell_type", n_pcs=5)
    assert (set(real.uns), set(real.obs), set(real.obsm), set(fake.uns), set(fake.obs)) == before
    scdiff.evaluate(real, fake, condition="cell_type", n_pcs=5, key_added="scdiff_eval")
    assert set(fake.uns) - before[3] == {"scdiff_eval"}   # on the generated cells, the thing scored
    assert {"table", "params"} <= set(fake.uns["scdiff_eval"])
    assert (set(real.uns), set(real.obs), set(real.obsm), set(fake.obs)) == (
        before[0], before[1], before[2], before[4])


def test_plots_leave_their_data_alone(log_adata):
    real, fake = log_adata[::2].copy(), log_adata[1::2].copy()
    before = [(set(a.obs), set(a.obsm), set(a.uns), a.X.sum()) for a in (real, fake)]
    scdiff.pl.compare(real, fake, color="cell_type", basis="pca", n_pcs=5, show=False)
    scdiff.pl.mean_scatter(real, fake, condition="cell_type", show=False)
    scdiff.pl.marker_dotplot(real, fake, condition="cell_type", show=False)
    after = [(set(a.obs), set(a.obsm), set(a.uns), a.X.sum()) for a in (real, fake)]
    assert after == before
