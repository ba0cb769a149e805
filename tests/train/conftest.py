import pytest

from comba_vision.train import trainer


@pytest.fixture
def nan_models(monkeypatch):
    """The trainer's models output NaN (a forward hook): every loss is non-finite."""
    real = trainer.create_model

    def poisoned(*a, **k):
        m = real(*a, **k)
        m.register_forward_hook(lambda mod, inp, out: out * float("nan"))
        return m

    monkeypatch.setattr(trainer, "create_model", poisoned)
