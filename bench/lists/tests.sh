# One GPU: the kernels' tests at full Llama-7B shapes, the GPU tier included (tests/kernels/kernel_testing.py).
bench tests_kernels 400 python3 -m pytest tests/kernels -q -p no:cacheprovider --confcutdir tests/kernels --durations=10
