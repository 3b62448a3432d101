"""Evaluation: the rate protocol's signal processing, the paper's metrics, scoring a model on a split, result
plots and the unsupervised rPPG baselines."""
