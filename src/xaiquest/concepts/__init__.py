"""Stage-6 library: concept probe sets, shape/texture/colour bias, TCAV with significance, dissection-lite.

Pure, batched functions; the pipeline stage (:mod:`xaiquest.concepts.stage`) decides what runs.
Protocol: ``docs/concepts.md``.
"""
