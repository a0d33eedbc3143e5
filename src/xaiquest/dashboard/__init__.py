"""Interactive explorer of a run, ``xaiquest dashboard RUN_DIR``, or of one model, ``xaiquest dashboard
--model NAME`` (Gradio, localhost only).

``session`` holds the run's logic (run loading, image selection, stress, cached explanations and
their quality), ``model_session`` one model's (through ``explain-image``'s functions), ``views``
the pictures and tables, ``app`` the Gradio pages, ``browser`` a headless Chromium driver for the
end-to-end test and the docs screenshot. Gradio's usage analytics are switched off before Gradio
is imported: the dashboard must work offline and report nothing.
"""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
