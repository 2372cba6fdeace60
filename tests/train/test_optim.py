import pytest
import torch

from torchship.train.config import ScheduleConfig
from torchship.train.optim import Schedule


def lrs(name, epochs=10, steps=10, **kw):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = Schedule(opt, ScheduleConfig(name=name, **kw), steps, epochs)
    values = [sched.lr]
    for _ in range(epochs * steps - 1):
        sched.step_batch()
        values.append(sched.lr)
    return values, sched


def test_warmup_ramps_then_cosine_decays():
    values, _ = lrs("cosine", warmup_epochs=2)
    assert values[0] < 0.1
    assert values[19] == pytest.approx(1.0, abs=0.06)
    assert values[20] == pytest.approx(1.0)
    assert values[-1] < 0.01
    assert all(a >= b for a, b in zip(values[20:], values[21:], strict=False))


def test_step_exponential_onecycle():
    step, _ = lrs("step", step_size=3, gamma=0.5)
    assert step[29] == 1.0
    assert step[30] == 0.5
    assert step[60] == 0.25
    expo, _ = lrs("exponential", gamma=0.5)
    assert expo[10] == pytest.approx(0.5)
    assert expo[20] == pytest.approx(0.25)
    one, _ = lrs("onecycle")
    peak = max(range(len(one)), key=one.__getitem__)
    assert one[0] == pytest.approx(1 / 25)
    assert one[peak] == pytest.approx(1.0, abs=1e-3)
    assert one[-1] < 1e-3
    assert 25 <= peak <= 32


def test_plateau_reduces_after_patience_and_state_round_trips():
    _, sched = lrs("plateau", epochs=1, plateau_patience=1, gamma=0.5)
    for loss in (1.0, 0.9, 0.95, 0.95):
        sched.step_epoch({"val.loss": loss})
    assert sched.lr == 0.5
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    other = Schedule(opt2, sched.cfg, 10, 1)
    other.load_state_dict(sched.state_dict())
    assert other.lr == 0.5
