"""Device implementations that run inside a unik VM (imported by the generated ``main.py``)."""
