"""Fine-tuning: LoRA/QLoRA on one GPU or CPU, DeepSpeed ZeRO-3 across GPUs, and `doctor`."""
