"""Web layer of the ICH segmentation service (Flask blueprints, errors, headers, OpenAPI).

The app factory is ``app.create_app``; the web layer calls only ``model.pipeline``.
"""
