"""Seeing inside a trained recurrent model (``rnnkit analyze``, ``rnnkit report``):

- ``gradients``: gradient flow through time, ||dL/dh_k|| k steps back, at init and trained;
- ``spectra``: eigenvalues and singular values of W_hh per gate block, and ||dh_t/dx_1||;
- ``features`` and ``probes``: which hidden or cell unit follows which feature of a text;
- ``attention``: a seq2seq model's alignment maps;
- ``report``: one self-contained HTML page for a run.

``unrolled`` runs a model's cells step by step with every state kept; ``runs`` loads a run and
a batch of its validation data and writes under ``RUN/analysis/``.
"""
