"""Names the engine defines and the scenario schema offers as choices, kept free of NumPy so
that reading a scenario file stays light."""

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")     # engine/optim.py's update kernels
BACKENDS = ("numba", "torch")                        # engine/backend.py's make_trainer
# [training] keys the session applies between two steps (Session.set_knob); the rest apply on reset
LIVE_SETTINGS = ("lr", "momentum", "clip_norm", "batch_size", "weight_decay", "beta1", "beta2", "eps", "alpha")
# training.device: where the torch backend computes ("cuda:N" names one GPU); the numba engine is CPU-only
DEVICES = ("cpu", "cuda", "mps", "auto")
