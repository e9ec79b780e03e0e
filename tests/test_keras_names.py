"""Automatic layer and model names are numbered per session, as in Keras (not per model).

Keras 3 (keras.src.utils.naming.auto_name): each new object without a name gets the
snake_case of its class, numbered by a global counter — "dense", "dense_1", ... across
every model — until ``keras.backend.clear_session()`` resets the counters.
"""

import pytest

from tinybn.keras import (
    BatchNormalization,
    Dense,
    Dropout,
    Input,
    Sequential,
    backend,
    clear_session,
)


@pytest.fixture(autouse=True)
def fresh_session():
    clear_session()
    yield
    clear_session()


def names(model: Sequential) -> list[str]:
    return [layer.name for layer in model.layers]


def test_names_continue_across_models():
    first = Sequential([Dense(3, input_dim=2), BatchNormalization(), Dense(1)])
    second = Sequential([Dense(2, input_dim=1), BatchNormalization(), Dropout(0.5)])
    assert (first.name, second.name) == ("sequential", "sequential_1")
    assert names(first) == ["dense", "batch_normalization", "dense_1"]
    assert names(second) == ["dense_2", "batch_normalization_1", "dropout"]


def test_summary_shows_the_session_numbered_names(capsys):
    Sequential([Dense(4, input_dim=2)])
    model = Sequential()
    model.add(Dense(3, activation="relu", input_dim=2))
    model.add(BatchNormalization())
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential_1"' in out
    assert "dense_1 (Dense)" in out and "batch_normalization (BatchNormalization)" in out


def test_a_layer_is_named_when_made_and_explicit_names_take_no_number():
    assert Dense(3).name == "dense"  # before any model sees it
    assert Dense(3, name="output").name == "output"
    assert Dense(3).name == "dense_1"
    assert Input(shape=(2,)).name == "input_layer"
    assert BatchNormalization().name == "batch_normalization"


def test_an_explicit_name_equal_to_an_automatic_one_is_refused_in_one_model():
    model = Sequential([Dense(2, input_dim=2)])  # "dense"
    with pytest.raises(ValueError, match="unique names: 'dense'"):
        model.add(Dense(2, name="dense"))
    assert names(model) == ["dense"]


def test_clear_session_restarts_the_numbering():
    Sequential([Dense(3, input_dim=2), Dense(1)])
    assert Dense(1).name == "dense_2"
    clear_session()
    assert Dense(1).name == "dense"
    assert Sequential().name == "sequential"
    backend.clear_session()  # the Keras spelling: keras.backend.clear_session()
    assert names(Sequential([Dense(3, input_dim=2), Dense(1)])) == ["dense", "dense_1"]
