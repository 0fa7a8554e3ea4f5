"""Training recipes, one file per method (torchtune style): `lora.py` (LoRA / QLoRA / DoRA)."""
