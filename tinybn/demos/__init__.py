"""Runnable demos: ``tinybn demo NAME`` or ``python -m tinybn.demos.NAME``."""
