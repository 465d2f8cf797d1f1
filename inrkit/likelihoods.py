"""Likelihoods p(y | f_Φ(x)): per-item negative log-likelihoods, averaged over points."""
