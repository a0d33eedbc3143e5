"""Stage: how far training moved each model that started from weights (``init`` or ``pretrained``),
depth by depth: representation similarity (CKA) and the agreement of where each depth responds."""
