# One GPU: each Triton op forward + backward at Llama-7B shapes against PyTorch eager and torch.compile.
bench micro 150 python3 bench/micro.py --compile-budget-s 60
