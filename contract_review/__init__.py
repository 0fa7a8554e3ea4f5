"""contract-review: review contracts clause by clause with a fine-tuned LLM.

This package holds what every other package shares: the label taxonomy loader
(`taxonomy`), the dataset record format (`records`), the prompt format (`prompt`),
the repository paths (`paths`) and the command line (`cli`).
"""

__version__ = "0.1.0"
