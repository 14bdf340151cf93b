"""Body models behind one interface (``engine.body.base.BodyModel``)."""
