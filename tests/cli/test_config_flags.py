"""`aesthal.cli.config_flags`: one flag per config field, generated from the
dataclasses, and the parsed flags back as the same configs."""

import dataclasses

import pytest
from absl import flags

from aesthal.cli import config_flags
from aesthal.config import DataConfig, ModelConfig, TrainConfig
from aesthal.config.fields import setting
from aesthal.config.parts import FLAT_FIELDS

CONFIGS = (ModelConfig, DataConfig, TrainConfig)
FLAGS = flags.FLAGS


@pytest.fixture
def parse():
    """Defines the configs' flags and parses a command line; the flags are
    removed afterwards. A flag of the same name that a script loaded by
    another test defined (conftest.load_script: `--dataset`, `--batch_size`)
    is set aside meanwhile and put back after."""
    names = config_flags.flag_names(CONFIGS)
    foreign = {name: FLAGS[name] for name in names if name in FLAGS}
    for name in foreign:
        delattr(FLAGS, name)
    before = set(FLAGS)
    defined = config_flags.define(CONFIGS, __name__)

    def parse_(*args):
        FLAGS.unparse_flags()
        FLAGS(["test", *args])
        return defined

    yield parse_
    FLAGS.unparse_flags()
    for name in set(FLAGS) - before:
        delattr(FLAGS, name)
    for name, flag in foreign.items():
        FLAGS[name] = flag


def test_every_config_field_has_its_flag(parse):
    """A field added to a config (or to one of the model's parts) gets its
    flag, named by its setting, with its help line: the fields' names and the
    flags' must cover each other."""
    defined = parse()
    fields = [f for cls in CONFIGS for _, f in config_flags.config_fields(cls)]
    assert {f.name for f in dataclasses.fields(ModelConfig)} - {
        f.name for f in fields
    } == {"trunk", "saliency", "aesthetics", "task_sharing"}
    for field in fields:
        if field.metadata.get("composite") is None:
            flag = FLAGS[config_flags.flat_name(field)]
            assert flag.help.endswith(field.metadata["help"]), field.name
    assert set(defined) == config_flags.flag_names(CONFIGS)
    # Each part's field by its flat (flag) name, e.g. --backbone, --sharing.
    assert set(FLAT_FIELDS) <= set(defined)
    assert {"backbone", "saliency_head", "sharing", "aesthetics_dropout"} <= set(
        defined
    )
    assert {"input_height", "input_width", "lr_shared", "cc_weight"} <= set(defined)


def test_a_field_without_a_flag_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Plain:
        speed: int = 3  # not a setting(...): no help, no flag name

    @dataclasses.dataclass(frozen=True)
    class Odd:
        shape: dict = setting(default_factory=dict, help="No flag type for a dict.")

    with pytest.raises(TypeError, match="speed.*setting"):
        config_flags.define((Plain,), __name__)
    with pytest.raises(TypeError, match="shape.*no flag for a field of type"):
        config_flags.define((Odd,), __name__)


def test_the_defaults_give_the_configs_defaults(parse):
    parse()
    assert config_flags.data_config() == DataConfig()
    assert config_flags.train_config() == dataclasses.replace(
        TrainConfig(),
        loss_weights={"saliency": 1.0, "aesthetics": 1.0},
        saliency_loss={"kld_weight": 1.0, "cc_weight": 0.0, "nss_weight": 0.0},
    )
    # The commands train at 96x128 by default (the field's flag_default).
    assert config_flags.model_config() == ModelConfig(input_size=(96, 128))


def test_flags_set_the_parts_and_the_composites(parse):
    parse(
        "--backbone=tiny_gn",
        "--saliency_head=readout",
        "--readout_channels=8,4",
        "--centre_prior=fixed",
        "--prior_grid=3,4",
        "--aesthetics_dropout=0.25",
        "--input_height=64",
        "--input_width=80",
        "--side_heads=saliency:stage2:0.5",
        "--tasks=saliency",
        "--validation_split=",
        "--loss_weighting=uncertainty",
        "--lr_shared=1e-4",
        "--nss_weight=0.5",
        "--tensorboard_images=0",
    )
    model = config_flags.model_config()
    assert model.trunk.name == "tiny_gn"
    assert (model.saliency.kind, model.saliency.readout_channels) == ("readout", (8, 4))
    assert (model.saliency.centre_prior, model.saliency.prior_grid) == ("fixed", (3, 4))
    assert model.aesthetics.dropout == 0.25
    assert model.input_size == (64, 80)
    assert model.side_heads == (("saliency", "stage2", 0.5),)
    assert model.tasks == ("saliency",)
    data, train = config_flags.data_config(), config_flags.train_config()
    assert data.validation_split is None and data.tasks == ("saliency",)
    # Another weighting than fixed sets the task weights itself.
    assert train.loss_weights == {}
    assert train.group_learning_rates == {"shared": 1e-4}
    assert train.saliency_loss == {
        "kld_weight": 1.0,
        "cc_weight": 0.0,
        "nss_weight": 0.5,
    }
    assert train.tensorboard_images == 0


def test_bad_values_are_named(parse):
    parse("--prior_grid=3,x")
    with pytest.raises(config_flags.FlagValueError, match="--prior_grid=3,x"):
        config_flags.model_config()
    parse("--side_heads=saliency:stage2")
    with pytest.raises(ValueError, match="task:tap:weight"):
        config_flags.model_config()
    parse("--sharing=soft", "--frozen_up_to=stage2")
    with pytest.raises(ValueError, match="frozen_up_to"):
        config_flags.model_config()


def test_a_second_definition_returns_the_same_flags(parse):
    first = parse()
    again = config_flags.define(CONFIGS, "another_command")
    assert set(first) == set(again)
    FLAGS(["test", "--backbone=vgg16"])
    assert again["backbone"].value == first["backbone"].value == "vgg16"
    assert FLAGS["backbone"] in FLAGS.get_key_flags_for_module("another_command")
