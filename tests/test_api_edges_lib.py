"""The library used from Python: a wrong argument to fit, a config built directly, a run folder that
no longer fits its config, and a bad k or profile get one clear error line, not a raw traceback."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import fields

import numpy as np
import pytest
import torch

from gpt2rec.coldstart import read_profile, recommend_profile
from gpt2rec.data.load import DataConfig
from gpt2rec.data.splits import SplitConfig
from gpt2rec.errors import DataError, UserError
from gpt2rec.explain import explain_run, explain_user
from gpt2rec.train.config import TrainConfig
from gpt2rec.train.loop import fit
from gpt2rec.utils.config import check_k, from_dict
from test_train_loop import CTX, _build, block_split

CONTRACT = r"loss_fn\(pos \(B,\), neg \(B,\) or \(B, N\)\) -> scalar tensor computed from them"


def _fit(**kwargs):
    cfg = kwargs.pop("config", TrainConfig(epochs=1, batch_size=32, patience=0))
    return fit(_build("bpr", {"dim": 4}, seed=0), CTX, block_split(), cfg, None, **kwargs)


# ---- 1. fit's loss_fn ----------------------------------------------------------------------------
def test_a_loss_name_instead_of_a_function_says_to_pass_one_or_set_the_config():
    with pytest.raises(TypeError, match=r"gpt2rec.losses.bpr_loss .*got 'bpr'.*TrainConfig\(loss=") as info:
        _fit(loss_fn="bpr")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "loss_fn, problem",
    [
        (lambda pos: pos.mean(), "failed on its first call"),  # wrong signature
        (lambda pos, neg: 1.0, r"a float \(1.0\), not a tensor"),  # a constant: only the L2 term would train
        (lambda pos, neg: torch.tensor(1.0), "no gradient"),
        (lambda pos, neg: (neg - pos).detach().mean(), "no gradient"),
        (lambda pos, neg: neg - pos, r"shape \(32,\), not a scalar"),
        (lambda pos, neg: (neg > pos).sum(), "torch.int64 tensor"),
    ],
)
def test_a_loss_off_the_contract_is_refused_on_the_first_step(loss_fn, problem):
    with pytest.raises(TypeError, match=f"{problem}.*{CONTRACT}") as info:
        _fit(loss_fn=loss_fn)
    assert "\n" not in str(info.value)


def test_a_loss_on_the_contract_trains_and_is_checked_once():
    calls = []

    def loss(pos, neg):
        calls.append(pos.requires_grad)
        return torch.nn.functional.softplus(neg - pos).mean()

    result = _fit(loss_fn=loss)
    assert len(calls) == 3 and result.epochs_run == 1  # 96 pairs in batches of 32


# ---- 2. fit's config and validate ----------------------------------------------------------------
def test_a_dict_config_says_to_pass_a_train_config():
    with pytest.raises(TypeError, match=r"must be a TrainConfig, got dict; pass TrainConfig\(\*\*settings\)"):
        _fit(config={"epochs": 1})


def test_validate_returning_none_says_what_it_must_return():
    with pytest.raises(TypeError, match=r"validate\(model\) must return a dict of metrics that holds 'ndcg@10'"):
        _fit(validate=lambda model: None)


# ---- 3. the seed's help says what fit seeds ------------------------------------------------------
def test_seed_help_does_not_promise_that_fit_seeds_initialisation():
    help_ = next(f for f in fields(TrainConfig) if f.name == "seed").metadata["help"]
    assert "sampling and dropout in fit" in help_ and "torch.manual_seed(seed)" in help_


# ---- 4. a run folder whose weights do not fit its config -----------------------------------------
def _tiny_run(tmp_path):
    from gpt2rec.pipeline import RunConfig, train_run

    rows = [(u, i) for u in range(12) for i in range(10) if (u + i) % 3]
    (tmp_path / "inter.csv").write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in rows))
    train = {"epochs": 1, "batch_size": 16}
    config = RunConfig.create("bpr", {"dim": 8}, data={"dataset": str(tmp_path / "inter.csv")}, train=train)
    train_run(config, tmp_path / "run", verbose=False)
    return tmp_path / "run"


def test_a_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    from gpt2rec.pipeline import open_run

    copy = tmp_path / "copy"
    shutil.copytree(_tiny_run(tmp_path), copy)
    config = json.loads((copy / "config.json").read_text())
    config["model_config"]["dim"] = 16
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError) as info:
        open_run(copy)
    message = str(info.value)
    assert "size mismatch for user_emb.weight: the file has shape [12, 8], the model [12, 16] (and 1 more)" in message
    assert "\n" not in message and message.endswith("retrain it")


def test_resuming_with_another_model_names_the_tensor_and_both_shapes(tmp_path):
    """fit(run_dir) kept only torch's first line: "holds another model (Error(s) in loading state_dict for BPRMF:)"."""
    config = TrainConfig(epochs=1, batch_size=32, patience=0)
    fit(_build("bpr", {"dim": 4}, seed=0), CTX, block_split(), config, tmp_path / "run")
    with pytest.raises(DataError) as info:
        fit(_build("bpr", {"dim": 8}, seed=0), CTX, block_split(), config, tmp_path / "run")
    assert "holds another model (size mismatch for user_emb.weight: the file has shape" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_unexpected_keys_are_named_on_one_line():
    from gpt2rec.train.weights import load_error_line

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    renamed = {("2" + k[1:] if k.startswith("1") else k): v for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(renamed)
    assert load_error_line(info.value) == "missing key(s) 1.weight, 1.bias; unexpected key(s) 2.weight, 2.bias"


# ---- 5. k --------------------------------------------------------------------------------------
BAD_K = [0, -1, 2.7, True, None, "abc", "3"]


@pytest.mark.parametrize("k", BAD_K)
def test_check_k_refuses_anything_but_a_whole_number_from_one(k):
    with pytest.raises(UserError, match=f"k must be a whole number >= 1 .*got {k!r}"):
        check_k(k)


def test_check_k_takes_python_and_numpy_integers():
    assert check_k(3) == 3 and check_k(np.int64(2)) == 2 and type(check_k(np.int64(2))) is int


@pytest.mark.parametrize("k", BAD_K)
def test_explain_and_cold_start_refuse_a_bad_k(tmp_path, k):
    # checked before the run is opened: this folder need not even exist
    with pytest.raises(UserError, match="k must be a whole number >= 1"):
        explain_run(tmp_path / "missing", "1", k=k)
    with pytest.raises(UserError, match="k must be a whole number >= 1"):
        recommend_profile(tmp_path / "missing", {"gender": "F"}, k=k)
    with pytest.raises(UserError, match="k must be a whole number >= 1"):
        explain_user(object(), "1", k=k)  # a loaded Run: checked before anything of it is used


# ---- 6. profile messages name no CLI flag --------------------------------------------------------
@pytest.mark.parametrize(
    "text, message",
    [
        ("F", "profile 'F' is neither a JSON object nor a file"),
        ('{"age": ', "profile must be a JSON object or a JSON file"),
    ],
)
def test_profile_errors_name_no_command_line_flag(text, message):
    with pytest.raises(UserError) as info:
        read_profile(text)
    assert str(info.value).startswith(message) and "--profile" not in str(info.value)


# ---- 7. TrainConfig built directly checks its types ----------------------------------------------
@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", "5", "epochs must be an integer, got '5'"),
        ("epochs", 2.5, "epochs=2.5 is not an integer"),  # trained 3 epochs
        ("epochs", 5.0, "epochs must be an integer, got 5.0"),
        ("batch_size", True, "batch_size=True is not an integer"),  # trained with batches of 1
        ("lazy_adam", "no", "lazy_adam must be true or false, got 'no'"),
        ("lr", "0.1", "lr must be a number, got '0.1'"),
        ("device", 3, "device must be a string, got 3"),
        ("seed", None, "seed must be an int, got None"),
    ],
)
def test_train_config_built_directly_checks_types(field, value, message):
    with pytest.raises(TypeError, match=f"^TrainConfig: {message}$".replace("(", r"\(")):
        TrainConfig(**{field: value})
    # the converter (JSON, command line) still reads strings, and names the field at the edge
    if isinstance(value, str) and value != "no":
        assert getattr(from_dict(TrainConfig, {field: value}), field) == json.loads(value)


def test_train_config_takes_typed_values():
    cfg = TrainConfig(epochs=np.int64(3), lr=1, weight_decay=0, lazy_adam=True, device=None)
    assert (cfg.epochs, cfg.lr, cfg.lazy_adam) == (3, 1, True)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got nan"):  # a float: the value check
        TrainConfig(lr=float("nan"))


def test_numpy_numbers_become_plain_ones_so_the_config_saves_as_json():
    """SplitConfig(seed=np.int64(3)) was refused; TrainConfig kept np.float32 and failed when saved."""
    from gpt2rec.models.bpr import BPRConfig
    from gpt2rec.utils.config import to_dict

    train = TrainConfig(seed=np.int64(3), lr=np.float32(0.5), epochs=np.int32(2))
    split = SplitConfig(seed=np.int64(3))
    model = BPRConfig(dim=np.int64(8), reg=np.float64(1e-3))
    assert (type(train.seed), type(train.lr), type(split.seed), type(model.dim)) == (int, float, int, int)
    assert json.loads(json.dumps(to_dict(train)))["lr"] == 0.5 and split.seed == 3
    json.dumps(to_dict(model))


def test_new_items_are_read_with_the_runs_item_column_and_ids_as_written(tmp_path):
    """A run trained with --item-col movie left a new-items file's movie column unread; "007" became 7."""
    from gpt2rec.coldstart import read_items

    (tmp_path / "new.csv").write_text("movie,title\n007,Alien (1979)\n12,Heat (1995)\n")
    df = read_items(tmp_path / "new.csv", id_column="movie")
    assert list(df.columns) == ["item_id", "title"] and df["item_id"].tolist() == ["007", "12"]


def test_a_run_loaded_with_other_ids_of_the_same_counts_is_refused(tmp_path):
    """Equal user and item counts let another file's IDs through, scored as the run's own."""
    from gpt2rec.data.dataset import Dataset
    from gpt2rec.pipeline import open_run
    from gpt2rec.train.checkpoint import load_model

    run = _tiny_run(tmp_path)
    data = open_run(run).dataset
    raw = data.interactions.assign(user_id=data.user_ids[data.interactions["user"]] + 100,
                                   item_id=data.item_ids[data.interactions["item"]])  # fmt: skip
    other = Dataset.from_frames("other", raw[["user_id", "item_id", "rating", "timestamp"]])
    assert (other.n_users, other.n_items) == (data.n_users, data.n_items)
    with pytest.raises(DataError, match=r"trained on other users than the dataset's: user 1 is '0' there, '100' here"):
        load_model(run, other)
    load_model(run, data)  # the run's own data loads


def test_a_run_folder_edited_by_hand_names_the_file(tmp_path):
    """A bad value in config.json did not say where it came from; a deleted split/ was told to
    'write one with: gpt2rec data split', which does not mend a run folder."""
    from gpt2rec.pipeline import open_run

    run = _tiny_run(tmp_path)
    edited = tmp_path / "edited"
    shutil.copytree(run, edited)
    config = json.loads((edited / "config.json").read_text())
    config["model_config"]["dim"] = "wide"
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match=r"edited is damaged: config.json holds a setting gpt2rec refuses \(.*dim"):
        open_run(edited)
    unsplit = tmp_path / "unsplit"
    shutil.copytree(run, unsplit)
    shutil.rmtree(unsplit / "split")
    with pytest.raises(DataError, match="unsplit is damaged: split is missing or incomplete"):
        open_run(unsplit)


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda: DataConfig(dataset="ml-100k", implicit_threshold="4"),
            "DataConfig: implicit_threshold must be a number, got '4'",
        ),
        (lambda: DataConfig(user_col=3), "DataConfig: user_col must be a string, got 3"),
        (lambda: SplitConfig(seed=1.5), "SplitConfig: seed=1.5 is not an integer"),
        (lambda: SplitConfig(seed=True), "SplitConfig: seed=True is not an integer"),
        (lambda: SplitConfig(cold_fraction="0.2"), "SplitConfig: cold_fraction must be a number, got '0.2'"),
    ],
)
def test_data_and_split_configs_built_directly_check_types(build, message):
    """The README builds DataConfig and SplitConfig directly; a string threshold failed later, a bool
    seed split with seed 1."""
    with pytest.raises(TypeError, match=re.escape(message)):
        build()


def test_model_configs_built_directly_check_types():
    """BPRConfig(item_bias="no") turned the bias on (a non-empty string is true)."""
    from gpt2rec.models.bpr import BPRConfig
    from gpt2rec.models.registry import get_spec, model_names
    from gpt2rec.utils.config import FieldTypeError

    with pytest.raises(FieldTypeError, match="BPRConfig: item_bias must be true or false, got 'no'"):
        BPRConfig(item_bias="no")
    with pytest.raises(ValueError, match="BPRConfig: dim must be an integer, got '64'"):  # also a ValueError
        BPRConfig(dim="64")
    for name in model_names():  # every default still builds
        get_spec(name).config_cls()


def test_new_items_are_read_in_the_format_of_the_runs_files(tmp_path):
    """A run trained on ';'-separated latin-1 files could not read new items written the same way."""
    from gpt2rec.coldstart import read_items

    (tmp_path / "new.csv").write_bytes("item_id;title\n7;Amélie (2001)\n".encode("latin-1"))
    df = read_items(tmp_path / "new.csv", sep=";", encoding="latin-1")
    assert df.to_dict("records") == [{"item_id": "7", "title": "Amélie (2001)"}]


def test_a_new_items_file_without_a_separator_is_read_by_its_suffix_as_the_runs_tables_are(tmp_path):
    """A .dat file is '::' and a .psv '|' for the run's own tables; new items were read with ','."""
    from gpt2rec.coldstart import read_items

    (tmp_path / "new.dat").write_text('item_id::title::genres\n7::"Heat::the sequel, (2001)"::Action|Crime\n')
    (tmp_path / "new.psv").write_text("item_id|title\n8|Up, again (2010)\n")
    assert read_items(tmp_path / "new.dat").to_dict("records") == [
        {"item_id": "7", "title": "Heat::the sequel, (2001)", "genres": "Action|Crime"}  # (quotes kept '::' whole)
    ]
    assert read_items(tmp_path / "new.psv").to_dict("records") == [{"item_id": "8", "title": "Up, again (2010)"}]


def test_a_new_items_file_in_another_separator_is_named_as_such(tmp_path):
    """A run's items in '|' and a comma-separated new-items file: 'new items lack column(s) title, genres'."""
    from gpt2rec.coldstart import read_items

    (tmp_path / "new.csv").write_text("title,genres\nHeat (1995),Action\n")
    with pytest.raises(DataError, match="split on pipe; the header looks comma-separated, not pipe-separated; "
                                        "write it with pipe"):  # fmt: skip
        read_items(tmp_path / "new.csv", sep="|")


def test_a_json_items_file_may_hold_one_object(tmp_path):
    """One object is one new item (pandas refused it: "If using all scalar values, you must pass an index")."""
    from gpt2rec.coldstart import read_items

    (tmp_path / "one.json").write_text('{"title": "Foo (2020)", "genres": "Comedy"}')
    (tmp_path / "list.json").write_text('[{"title": "Foo (2020)", "genres": "Comedy"}]')
    assert read_items(tmp_path / "one.json").to_dict("records") == [{"title": "Foo (2020)", "genres": "Comedy"}]
    assert read_items(tmp_path / "one.json").equals(read_items(tmp_path / "list.json"))


@pytest.mark.parametrize(
    "text, kind",
    [('"just text"', "text"), ("[1, 2]", "a list of other values"), ("[]", "an empty list"), ("3", "a number")],
)
def test_a_json_items_file_that_holds_no_objects_is_refused_in_words(tmp_path, text, kind):
    from gpt2rec.coldstart import read_items

    (tmp_path / "x.json").write_text(text)
    with pytest.raises(UserError, match=f"holds {kind}.*, not items; give a list of objects"):
        read_items(tmp_path / "x.json")


def test_new_items_keep_words_pandas_would_read_as_missing(tmp_path):
    """Training reads "NA" (Namibia, a title) as a word; new items were read as NaN and shown as "nan"."""
    from gpt2rec.coldstart import read_items

    (tmp_path / "new.csv").write_text("title,genres\nNA,Drama\nnull,Comedy\n")
    assert read_items(tmp_path / "new.csv")["title"].tolist() == ["NA", "null"]
    (tmp_path / "blank.csv").write_text("title,genres\n,Drama\n")
    with pytest.raises(UserError, match="row 1 has no title"):
        read_items(tmp_path / "blank.csv")
