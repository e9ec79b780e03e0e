"""Runnable demos: ``tinybn demo NAME`` or ``python -m demos.NAME``."""
