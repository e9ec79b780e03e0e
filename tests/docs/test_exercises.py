"""tinybn.exercises: each exercise is solvable (the solutions live here, and only here), and
each checker catches the mistakes learners make, with a hint that names the mistake."""

import numpy as np
import pytest

from tinybn import exercises

# -- the solutions ------------------------------------------------------------------------


def bn_forward(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def bn_backward(dy, x, gamma, eps):
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    xhat = (x - mu) / np.sqrt(var + eps)
    dgamma = (dy * xhat).sum(axis=0)
    dbeta = dy.sum(axis=0)
    dxhat = dy * gamma
    dx = (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (n * np.sqrt(var + eps))
    return dx, dgamma, dbeta


def bn_running_stats(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    if training:
        n = x.shape[0]
        mean, var = x.mean(axis=0), x.var(axis=0)
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    else:
        mean, var = running_mean, running_var
    y = gamma * (x - mean) / np.sqrt(var + eps) + beta
    return y, running_mean, running_var


def layer_norm(x, gamma, beta, eps):
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


SOLUTIONS = {
    "bn_forward": bn_forward,
    "bn_backward": bn_backward,
    "bn_running_stats": bn_running_stats,
    "layer_norm": layer_norm,
}


def test_the_list_names_every_exercise_once():
    assert sorted(exercises.list()) == sorted(SOLUTIONS)
    assert all("chapter" in task for task in exercises.list().values())


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_each_exercise_is_solvable(name, capsys):
    result = exercises.check(name, SOLUTIONS[name])
    assert result.passed and bool(result)
    assert result.cases_run >= 3
    assert capsys.readouterr().out.strip() == f"{name}: passed all {result.cases_run} cases"


# -- planted mistakes: (exercise, wrong function, words the hint must contain) ------------


def forward_unbiased(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    return gamma * (x - mu) / np.sqrt(x.var(axis=0, ddof=1) + eps) + beta


def forward_no_eps(x, gamma, beta, eps):
    return bn_forward(x, gamma, beta, 0.0)


def forward_eps_outside_sqrt(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    return gamma * (x - mu) / (np.sqrt(x.var(axis=0)) + eps) + beta


def forward_wrong_axis(x, gamma, beta, eps):
    mu = x.mean(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=1, keepdims=True) + eps) + beta


def backward_without_mean_route(dy, x, gamma, eps):
    dx, dgamma, dbeta = bn_backward(dy, x, gamma, eps)
    dxhat = dy * gamma
    return dx + dxhat.sum(0) / (x.shape[0] * np.sqrt(x.var(0) + eps)), dgamma, dbeta


def backward_without_var_route(dy, x, gamma, eps):
    std = np.sqrt(x.var(0) + eps)
    dxhat = dy * gamma
    dx = (dxhat - dxhat.mean(0)) / std
    return dx, *bn_backward(dy, x, gamma, eps)[1:]


def backward_dbeta_mean(dy, x, gamma, eps):
    dx, dgamma, _ = bn_backward(dy, x, gamma, eps)
    return dx, dgamma, dy.mean(0)


def running_biased_var(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    y, rm, _ = bn_running_stats(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    if training:
        running_var = (1 - momentum) * running_var + momentum * x.var(0)
    return y, rm, running_var


def running_momentum_reversed(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    return bn_running_stats(x, gamma, beta, running_mean, running_var, training, 1 - momentum, eps)


def running_eval_uses_batch(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    y, rm, rv = bn_running_stats(x, gamma, beta, running_mean, running_var, True, momentum, eps)
    return y, (rm if training else running_mean), (rv if training else running_var)


def layer_norm_batch_axis(x, gamma, beta, eps):
    return bn_forward(x, gamma, beta, eps)


def layer_norm_unbiased(x, gamma, beta, eps):
    mu = x.mean(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=1, ddof=1, keepdims=True) + eps) + beta


def layer_norm_no_eps(x, gamma, beta, eps):
    return layer_norm(x, gamma, beta, 0.0)


PLANTED = [
    ("bn_forward", forward_unbiased, "biased variance"),
    ("bn_forward", forward_no_eps, "add ε"),
    ("bn_forward", forward_eps_outside_sqrt, "under the square root"),
    ("bn_forward", forward_wrong_axis, "wrong axis"),
    ("bn_backward", backward_without_mean_route, "route through μ"),
    ("bn_backward", backward_without_var_route, "route through σ²"),
    ("bn_backward", backward_dbeta_mean, "dbeta is wrong"),
    ("bn_running_stats", running_biased_var, "UNBIASED"),
    ("bn_running_stats", running_momentum_reversed, "weight of the NEW"),
    ("bn_running_stats", running_eval_uses_batch, "not with the batch's own"),
    ("layer_norm", layer_norm_batch_axis, "wrong axis"),
    ("layer_norm", layer_norm_unbiased, "biased variance"),
    ("layer_norm", layer_norm_no_eps, "add ε"),
]


@pytest.mark.parametrize(
    "name, wrong, hint", PLANTED, ids=[f"{n}-{f.__name__}" for n, f, _ in PLANTED]
)
def test_a_planted_mistake_is_caught_with_its_hint(name, wrong, hint):
    result = exercises.check(name, wrong, quiet=True)
    assert not result.passed
    assert "expected a different value" in result.message
    assert any(hint in h for h in result.hints), result.message


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_the_message_never_shows_the_expected_numbers(name):
    """A mismatch names the entry and the learner's value, never the answer."""
    import re

    def off_by_a_little(*args, **kwargs):
        out = SOLUTIONS[name](*args, **kwargs)
        return tuple(o * 1.01 for o in out) if isinstance(out, tuple) else out * 1.01

    result = exercises.check(name, off_by_a_little, quiet=True)
    assert not result.passed
    expected_values = exercises.EXERCISES[name].expected(**exercises.EXERCISES[name].cases()[0])
    first = np.ravel(expected_values[0] if isinstance(expected_values, tuple) else expected_values)
    numbers = [float(n) for n in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", result.message)]
    assert not any(np.isclose(n, v, rtol=1e-4) for n in numbers for v in first[:5])


def test_shape_and_return_type_mistakes_are_named():
    result = exercises.check("bn_forward", lambda x, gamma, beta, eps: x[:1], quiet=True)
    assert "shape (1, 2), expected (8, 2)" in result.message
    result = exercises.check("bn_backward", lambda dy, x, gamma, eps: dy, quiet=True)
    assert "return a tuple (dx, dgamma, dbeta)" in result.message
    result = exercises.check("layer_norm", lambda x, gamma, beta, eps: 1 / 0, quiet=True)
    assert "raised ZeroDivisionError" in result.message


def test_the_learners_arrays_are_copies():
    """A function that writes into its input does not corrupt the expected values."""

    def in_place(x, gamma, beta, eps):
        y = bn_forward(x, gamma, beta, eps)
        x[...] = 0
        return y

    assert exercises.check("bn_forward", in_place, quiet=True).passed


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown exercise 'bn'"):
        exercises.check("bn", bn_forward)
    with pytest.raises(TypeError, match="must be callable"):
        exercises.check("bn_forward", 3)
