"""Evaluation: predictions, F1 on risk clauses with confidence intervals, baselines, reports."""
