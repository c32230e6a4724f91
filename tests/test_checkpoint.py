"""Checkpoints: atomic safetensors round trips, load_run, and clear errors for damaged files."""

import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from rnnkit.data import build_tokenizer
from rnnkit.errors import UserError
from rnnkit.models.language_model import LanguageModel
from rnnkit.train.checkpoint import load_checkpoint, load_run, save_checkpoint, to_json
from rnnkit.train.rundir import RunDir


def _run_dir(tmp_path, tie=False):
    torch.manual_seed(0)
    model = LanguageModel(6, embed=8, hidden=8, tie_weights=tie)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": "lm", "hidden": 8}))
    build_tokenizer("char", "hello!").save(run / "checkpoints")  # 6 tokens, as the model
    save_checkpoint(run / "checkpoints" / "last.safetensors", model, None, {"step": 1})
    return run, model


def test_round_trip_weights_extra_and_metadata(tmp_path):
    model = LanguageModel(7, cell="gru", hidden=5, layers=2, tie_weights=False)
    extra = {"opt.0.exp_avg": torch.randn(3, 4), "rng": torch.get_rng_state()}
    p = save_checkpoint(tmp_path / "c.safetensors", model, extra, {"step": 9, "best": 1.25})
    ck = load_checkpoint(p)
    assert ck.metadata["step"] == 9 and ck.metadata["best"] == 1.25
    assert ck.metadata["model_config"] == model.config
    assert all(torch.equal(ck.model_state[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(ck.extra[k], v) for k, v in extra.items())
    assert [f for f in os.listdir(tmp_path)] == ["c.safetensors"]  # no temporary left


def test_load_run_rebuilds_tied_model(tmp_path):
    run, model = _run_dir(tmp_path, tie=True)
    loaded = load_run(run)  # best missing: falls back to last
    assert loaded.path.name == "last.safetensors" and not loaded.model.training
    assert loaded.model.output.weight is loaded.model.embedding.weight
    x = torch.randint(6, (4, 2))
    torch.testing.assert_close(loaded.model(x)[0], model.eval()(x)[0])
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("hello")) == "hello"
    assert loaded.config == {"task": "lm", "hidden": 8}


def test_missing_and_not_run_dirs(tmp_path):
    with pytest.raises(UserError, match="no such run directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(UserError, match="not an rnnkit run directory"):
        load_run(tmp_path)
    run, _ = _run_dir(tmp_path)
    (run / "checkpoints" / "last.safetensors").unlink()
    with pytest.raises(UserError, match="no best checkpoint"):
        load_run(run)


def test_pickle_renamed_is_refused_without_unpickling(tmp_path):
    run, _ = _run_dir(tmp_path)

    class Boom:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "pwned"),))

    (run / "checkpoints" / "last.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(UserError, match="not an rnnkit checkpoint"):
        load_run(run)
    assert not (tmp_path / "pwned").exists()


def test_truncated_file_is_refused(tmp_path):
    run, _ = _run_dir(tmp_path)
    f = run / "checkpoints" / "last.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(UserError, match="not an rnnkit checkpoint"):
        load_run(run)


def test_foreign_safetensors_wrong_keys_or_shapes(tmp_path):
    run, _ = _run_dir(tmp_path)
    f = run / "checkpoints" / "last.safetensors"
    save_file({"weight": torch.zeros(3)}, f)  # another program's file: no rnnkit metadata
    with pytest.raises(UserError, match="not an rnnkit checkpoint"):
        load_run(run)
    wrong = LanguageModel(6, embed=8, hidden=4)  # weights whose shapes disagree with ...
    save_checkpoint(f, wrong, None, {})
    meta = json.loads(load_checkpoint(f).metadata and _raw_meta(f))
    meta["model_config"]["hidden"] = 8  # ... the config stored beside them
    tensors = {f"model.{k}": v.clone() for k, v in wrong.state_dict().items()}
    save_file(tensors, f, metadata={"rnnkit": json.dumps(meta)})
    with pytest.raises(UserError, match="does not match"):
        load_run(run)


def _raw_meta(path):
    from safetensors import safe_open

    with safe_open(path, "pt") as fh:
        return fh.metadata()["rnnkit"]


# ---- damaged or foreign weights, and JSON that stays JSON --------------------------------

def _rewrite(path, change):
    """Write ``path`` again with ``change(tensors)`` applied, its metadata kept."""
    from safetensors.torch import load_file

    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"rnnkit": _raw_meta(path)})


def _with_model_config(run, model):
    """config.json as training writes it: the model's config under "model"."""
    (run / "config.json").write_text(json.dumps({"task": "lm", "model": model.config}))


def test_an_intact_run_with_its_model_config_loads(tmp_path):
    run, model = _run_dir(tmp_path)
    _with_model_config(run, model)
    assert load_run(run).model.config == model.config


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    run, _ = _run_dir(tmp_path)
    f = run / "checkpoints" / "last.safetensors"
    _rewrite(f, lambda t: t["model.output.weight"].view(-1).__setitem__(3, bad))
    with pytest.raises(UserError, match=r"damaged: 1 of the 48 weights of output.weight are "
                       "NaN or infinite") as e:
        load_run(run)
    assert str(f) in str(e.value) and "train again" in str(e.value)


def test_a_checkpoint_of_another_model_than_config_json_is_refused(tmp_path):
    run, model = _run_dir(tmp_path)
    (run / "config.json").write_text(json.dumps(
        {"task": "lm", "model": {**model.config, "hidden": 16, "cell": "gru"}}))
    with pytest.raises(UserError, match=r"not this run's model: its cell 'lstm' \(config.json: "
                       r"'gru'\), hidden 8 \(config.json: 16\); it was copied"):
        load_run(run)


def test_a_checkpoint_with_another_vocabulary_is_refused_and_another_suggested(tmp_path):
    run, _ = _run_dir(tmp_path)
    save_checkpoint(run / "checkpoints" / "best.safetensors", LanguageModel(9, hidden=8), None,
                    {})  # from a run whose text had 9 distinct characters
    with pytest.raises(UserError, match="predicts 9 tokens but the run's tokenizer has 6; .*"
                       "use --checkpoint last"):
        load_run(run)
    assert load_run(run, "last").model.vocab_size == 6  # the run's own checkpoint still loads


def test_to_json_writes_null_for_nan_and_infinity_at_any_depth(tmp_path):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    obj = {"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf"), "d": (2, "x")}],
           "e": {"f": {"g": [float("nan")]}}, "ok": 3}
    back = json.loads(to_json(obj), parse_constant=refuse)
    assert back == {"a": None, "b": [1.5, None, {"c": None, "d": [2, "x"]}],
                    "e": {"f": {"g": [None]}}, "ok": 3}
    run = RunDir(tmp_path / "run")
    run.make()
    run.write_json("summary.json", obj)
    assert json.loads((tmp_path / "run" / "summary.json").read_text(),
                      parse_constant=refuse) == back
