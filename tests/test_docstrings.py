"""The examples in tinybn's docstrings run (doctest), so the API reference cannot show an
example that no longer works; and the public names the reference lists are documented."""

import doctest
import importlib
import inspect
import pkgutil

import pytest

import tinybn
from tinybn import exercises

MODULES = sorted(info.name for info in pkgutil.walk_packages(tinybn.__path__, "tinybn."))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in finder.find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_there_are_examples_to_run():
    """The parametrized test above is live: the documented names hold real examples."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    examples = sum(
        len(test.examples)
        for name in MODULES
        for test in finder.find(importlib.import_module(name), name)
    )
    assert examples >= 50, examples


# names the issue found undocumented; each now has a docstring with an example
DOCUMENTED_WITH_EXAMPLES = [
    tinybn.set_default_dtype,
    tinybn.get_default_dtype,
    tinybn.is_grad_enabled,
    tinybn.Tensor.mean,
    tinybn.Tensor.sum,
    tinybn.Tensor.sqrt,
    tinybn.Tensor.reshape,
    tinybn.nn.Module.parameters,
    tinybn.nn.Module.forward,
    tinybn.Value,
    tinybn.functional.batch_norm,
    tinybn.functional.batch_norm_backward,
    tinybn.functional.layer_norm,
    tinybn.backward_steps,
    exercises.check,
]


@pytest.mark.parametrize("obj", DOCUMENTED_WITH_EXAMPLES, ids=lambda o: o.__qualname__)
def test_public_names_have_an_example(obj):
    doc = inspect.getdoc(obj) or ""
    module_doc = inspect.getdoc(inspect.getmodule(obj)) or ""
    assert ">>>" in doc or (obj is tinybn.backward_steps and ">>>" in module_doc), obj
