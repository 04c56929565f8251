"""Neural recommenders in PyTorch, faithful to their papers, deterministic on the CPU.

Registered models: ``gmf``, ``mlp``, ``neumf`` (:mod:`neural.ncf`), ``multvae``,
``multdae`` (:mod:`neural.autoencoders`), ``cdae`` (:mod:`neural.cdae`), ``bprmf``
(:mod:`neural.bprmf`), and the content and visual models ``cdl``, ``cvae``, ``vbpr``,
``dvbpr`` and ``curatornet`` (one module each). They share one training loop (:mod:`neural.training`): seeding,
device choice, early stopping on validation NDCG@10, per-epoch checkpoints with
resumption. Importing these modules does not import torch; fitting does.
"""
