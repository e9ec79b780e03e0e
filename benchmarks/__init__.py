"""Benchmarks for tinybn (not part of the test suite).

Run every case, print the table and write JSON::

    python -m benchmarks            # all cases
    python -m benchmarks --cases bn_op scalar_bn --quick

Each case times tinybn beside a hand-written numpy reference (closed-form backward, no
autograd), PyTorch CPU eager and micrograd when they are installed. See README.md.
"""
