"""Speech engine (issue 4 builds it)."""


def load_speech(config):
    raise NotImplementedError("the speech engine is not built yet")
