"""descent's engine: networks, backprop and optimizers in NumPy + Numba, data and the training session.

Never imports Textual or the tui package.
"""
