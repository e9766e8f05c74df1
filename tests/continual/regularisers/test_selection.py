"""Which parameters are regularised, in which groups."""

from __future__ import annotations

import pytest
import torch
from regulariser_problems import make_model
from torch import nn

from continual.regularisers import L2, PARAMETER_GROUPS
from continual.regularisers.selection import matches, select_parameters


def test_selection_groups_and_exclusion():
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    reg = L2(model, opt, select={"0.*": 1.0, "re:^2\\.": 0.5}, exclude=("*.bias",))
    assert reg.names == ["0.weight", "2.weight"]
    assert reg.group_names == ["0.*", "re:^2\\."]
    assert reg.group_members == [[0], [1]]
    reg.consolidate()
    assert reg.effective_c() == {"0.*": 1.0, "re:^2\\.": 0.5}
    with pytest.raises(ValueError, match="matches no"):
        L2(model, opt, select="actor")


class _ActorCritic(nn.Module):
    """The parameter names of stable-baselines3's ActorCriticPolicy (MLP, no shared layers)."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp_extractor = nn.Module()
        self.mlp_extractor.policy_net = nn.Sequential(nn.Linear(2, 4))
        self.mlp_extractor.value_net = nn.Sequential(nn.Linear(2, 4))
        self.action_net = nn.Linear(4, 1)
        self.value_net = nn.Linear(4, 1)
        self.log_std = nn.Parameter(torch.zeros(1))


HIDDEN = ["mlp_extractor.policy_net.0.weight", "mlp_extractor.policy_net.0.bias"]
HEAD = ["action_net.weight", "action_net.bias"]
CRITIC = [
    "mlp_extractor.value_net.0.weight",
    "mlp_extractor.value_net.0.bias",
    "value_net.weight",
    "value_net.bias",
]


@pytest.mark.parametrize(
    ("select", "names"),
    [("actor", HIDDEN + HEAD), ("critic", CRITIC), ("head", HEAD), ("hidden", HIDDEN)],
)
def test_parameter_groups_name_the_parts_of_an_actor_critic_policy(select, names):
    selected = select_parameters(_ActorCritic(), select, exclude=("log_std",))
    assert sorted(selected.names) == sorted(names)
    assert selected.group_names == [select]


def test_parameter_groups_and_default_selection():
    assert set(PARAMETER_GROUPS) == {"all", "actor", "critic", "head", "hidden"}
    selected = select_parameters(_ActorCritic())
    assert selected.group_names == ["all"] and "log_std" in selected.names
    frozen = _ActorCritic()
    frozen.log_std.requires_grad_(False)
    assert "log_std" not in select_parameters(frozen).names


def test_patterns_glob_and_regex():
    assert matches("mlp_extractor.policy_net.0.weight", "mlp_extractor.*")
    assert not matches("mlp_extractor.policy_net.0.weight", "policy_net.*")  # whole name
    assert matches("mlp_extractor.policy_net.0.weight", "re:policy_net")  # re.search


@pytest.mark.parametrize(
    ("select", "match"),
    [
        ([], "at least one"),
        ({"actor": -1.0}, "finite and >= 0"),
        ({"actor": float("nan")}, "finite"),
    ],
)
def test_invalid_selections_are_refused(select, match):
    with pytest.raises(ValueError, match=match):
        select_parameters(_ActorCritic(), select)


def test_params_as_name_parameter_pairs():
    model = make_model()
    selected = select_parameters(list(model.named_parameters()), "re:bias")
    assert selected.names == ["0.bias", "2.bias"]
    with pytest.raises(ValueError, match="iterable of"):
        select_parameters(list(model.parameters()))  # type: ignore[arg-type]
